"""Atomic checkpoint files.

A checkpoint is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the old one; a crash or a full disk during the
write leaves the previous checkpoint intact. Checkpoints hold the resolved
config, so ``test.py --ckpt`` and resume need nothing else but the data.
They are pickles: load only checkpoints you trust.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from utils.disk import disk_full_message, is_disk_full


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says what survived."""


def save_atomic(state: dict, path: str | Path) -> None:
    path = Path(path)
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


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; a run writes <run_dir>/checkpoints/last.pt "
                              f"and best.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it may be "
                              f"truncated: use the other checkpoint of the run (last.pt / best.pt)") from err
