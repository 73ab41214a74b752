"""Atomic checkpoint files that load without running code.

A checkpoint is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the old one; a crash or a full disk during the
write leaves the previous checkpoint intact. Checkpoints hold the resolved
config, so ``test.py --ckpt`` and resume need nothing else but the data.

Loading uses ``torch.load(weights_only=True)``, which restores tensors and
plain values but never calls code named in the file; ``save_atomic`` refuses
any other type, so every checkpoint this code writes loads that way. An old
or foreign pickle loads only with ``trust=True`` (``--trust_checkpoint``).
"""
from __future__ import annotations

import collections
import os
import pickle
import re
from pathlib import Path

import torch

from utils.disk import disk_full_message, is_disk_full

# What a checkpoint may contain: exactly what weights_only loading accepts and we need.
PLAIN_CONTAINERS = (dict, collections.OrderedDict, list, tuple)
PLAIN_VALUES = (str, int, float, bool, type(None), torch.Tensor, torch.nn.Parameter, torch.Size, torch.dtype,
                torch.device)
TEMPORARY = re.compile(r"^\..+\.pt\.tmp-\d+$")  # a save's temporary file, ".<name>.pt.tmp-<pid>"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says what survived."""


def check_plain(obj, where: str = "state") -> None:
    """Raise TypeError naming the first entry whose type weights_only loading would refuse
    (a numpy scalar or array, a dataclass, a Path, ...)."""
    kind = type(obj)
    if kind in PLAIN_CONTAINERS:
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            if isinstance(obj, dict) and type(key) not in (str, int):
                raise TypeError(f"checkpoint entry {where} has a key of type {type(key).__name__}")
            check_plain(value, f"{where}[{key!r}]")
    elif kind not in PLAIN_VALUES:
        raise TypeError(f"checkpoint entry {where} is a {kind.__module__}.{kind.__qualname__}; store tensors "
                        f"and plain Python values only (int, float, str, bool, None, list, tuple, dict)")


def save_atomic(state: dict, path: str | Path) -> None:
    path = Path(path)
    check_plain(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        kept = f"the previous {path.name} is intact" if path.exists() else f"no earlier {path.name} existed"
        if is_disk_full(err):
            raise CheckpointError(f"{disk_full_message(path)}; {kept}") from err
        raise CheckpointError(f"could not write checkpoint {path} ({type(err).__name__}: {err}); {kept}. "
                              f"Check free disk space and permissions of {path.parent}") from err
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def load_checkpoint(path: str | Path, trust: bool = False) -> dict:
    """Read a checkpoint on the CPU; ``trust=True`` also accepts arbitrary pickles
    (which can run code: only for files from a source you trust)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; a run writes <run_dir>/checkpoints/last.pt "
                              f"and best.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"it names {found.group(1)}" if found else "it holds objects beyond tensors and plain values"
        raise CheckpointError(f"checkpoint {path} was not loaded: {what}, which could run code when loaded (an "
                              f"old or foreign pickle). Only if you trust its source, pass --trust_checkpoint"
                              ) from err
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); it may be truncated: use the "
                              f"other checkpoint of the run (last.pt / best.pt)") from err
    return state


