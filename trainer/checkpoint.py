"""A run's checkpoint files: leftovers of interrupted saves, and best.pt made to agree
with the best epoch last.pt records (the files themselves: utils/checkpoint.py)."""
from __future__ import annotations

from pathlib import Path

from utils.checkpoint import TEMPORARY, CheckpointError, load_checkpoint, save_atomic


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete ``.<name>.pt.tmp-<pid>`` files of interrupted saves. Call only while
    holding the run's lock: then no live process can be writing them."""
    removed = [p for p in sorted(directory.glob(".*.pt.tmp-*")) if TEMPORARY.match(p.name)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def reconcile_best(directory: Path, state: dict) -> str | None:
    """Make best.pt agree with the best epoch recorded in ``state`` (last.pt's).

    Checkpoints are written last.pt first, then best.pt: a crash between the
    two leaves last.pt recording a new best epoch that best.pt lacks, and
    last.pt then *is* that epoch's model, so best.pt is rebuilt from it. Any
    other disagreement cannot be repaired (the best model is gone) and is
    reported. Returns a message for the log, or None when all agree.
    """
    best = state.get("best")
    path = directory / "best.pt"
    try:
        found = load_checkpoint(path)["epoch"] if path.exists() else None
    except CheckpointError:
        found = "unreadable"
    if best is None or found == best["epoch"]:
        return None
    if best["epoch"] == state["epoch"] and state.get("position") is None:
        save_atomic({**state, "selected_on_test_set": True}, path)
        return f"best.pt held epoch {found}, not the recorded best epoch {best['epoch']}; rebuilt it from last.pt"
    return (f"best.pt holds epoch {found} but the recorded best epoch is {best['epoch']}, and that model is no "
            f"longer available: best.pt is left as it is")
