"""Out-of-memory errors as one line: which memory ran out, and which size to lower.

PyTorch, NumPy and Python each word a failed allocation their own way
(torch.OutOfMemoryError for CUDA, a RuntimeError from the CPU allocator,
MemoryError, ENOMEM); ``memory_hint`` turns any of them raised inside it into
an ``OutOfMemory`` that says what ran out while doing what, with which sizes,
and suggests half of each size that can shrink.
"""
from __future__ import annotations

import errno
import re
from contextlib import contextmanager

from utils.disk import format_bytes

# Lower-case phrases of allocation failures that arrive as a RuntimeError (a data-loader worker's
# MemoryError is re-raised in the main process as a RuntimeError carrying the original message).
_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
            "unable to allocate", "alloc_failed")
_GPU_WORDS = ("CUDA", "CUBLAS", "CUDNN", "HIP", "MPS", "XPU", "GPU")


class OutOfMemory(RuntimeError):
    """Memory ran out; the message names which memory, the sizes in use and what to lower."""


def is_out_of_memory(err: BaseException | None) -> bool:
    """True when ``err``, or an exception it was raised from, is a failed allocation
    (but not one already turned into an ``OutOfMemory``)."""
    import torch

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OutOfMemory):
            return False
        if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
            return True
        if isinstance(err, OSError) and err.errno == errno.ENOMEM:
            return True
        if isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _MARKERS):
            return True
        err = err.__cause__ or err.__context__
    return False


def which_memory(err: BaseException) -> str:
    """``"GPU memory"`` or ``"CPU memory (RAM)"``, from the error's type and words."""
    import torch

    text = f"{type(err).__name__} {err}"
    gpu = isinstance(err, torch.OutOfMemoryError) or any(word in text for word in _GPU_WORDS)
    return "GPU memory" if gpu else "CPU memory (RAM)"


def requested(err: BaseException) -> str:
    """What the failed allocation asked for, as the error states it (``"805 MB"``), or ""."""
    text = str(err)
    found = re.search(r"allocate (\d+) bytes", text)
    if found:
        return format_bytes(int(found.group(1)))
    found = re.search(r"(?i)allocate ([\d.]+ ?[KMGT]i?B)", text)
    return found.group(1) if found else ""


def out_of_memory_message(err: BaseException, doing: str, sizes: tuple[tuple[str, int], ...]) -> str:
    """``out of GPU memory while training with batch_size=64, image_size=224 (one allocation asked
    for 2.00 GiB): lower batch_size or image_size, e.g. batch_size=32 or image_size=112``.
    ``sizes``: (how it is written, e.g. ``"batch_size="`` or ``"--batch_size "``, its value)."""
    asked = requested(err)
    shown = ", ".join(f"{name}{value}" for name, value in sizes)
    names = " or ".join(name.strip(" =") for name, _ in sizes)
    smaller = " or ".join(f"{name}{value // 2}" for name, value in sizes if value > 1)
    fix = (f"lower {names}, e.g. {smaller}" if smaller else
           "even the smallest sizes do not fit: free memory (other processes) or use a larger machine")
    return (f"out of {which_memory(err)} while {doing} with {shown}"
            f"{f' (one allocation asked for {asked})' if asked else ''}: {fix}")


@contextmanager
def memory_hint(doing: str, *sizes: tuple[str, int]):
    """Re-raise a failed allocation inside as ``OutOfMemory`` (``out_of_memory_message``)."""
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        raise OutOfMemory(out_of_memory_message(err, doing, sizes)) from err
