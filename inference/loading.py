"""Any model source -> one checkpoint-like dict, and CAL rebuilt from it.

A model comes from a training checkpoint, a run directory (its last.pt), an
export folder (export.py) or ``hf://REPO_ID[@rev]``; all of them load into the
same dict (``load_model_state``), which ``restore_method`` turns into the
method its config names (CAL, CPL, SimGCD), placed on a device for evaluation.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dataset.protocols import ClassTableError, class_fingerprint, describe_class_change
from inference.export import read_export
from inference.export_schema import check_checkpoint
from inference.hub import HUB_PREFIX
from models.method import upgrade_config
from utils.checkpoint import CheckpointError, load_checkpoint


def restore_method(cfg, state: dict, device):
    """The method of ``cfg`` with the weights (and valid prototype count) of
    ``state``, placed on ``device`` for evaluation."""
    from models.method import create_method
    from utils.device import place_model

    method = create_method(cfg, state["num_known"], state["num_classes"])
    method.net.load_state_dict(state["model"])
    place_model(method.model, device, cfg.channels_last, cfg.cudnn_benchmark)
    return method


def load_model_state(source: str, trust: bool = False, allow_class_change: bool = False) -> dict:
    """Checkpoint-like dict (config, model, num_known, num_classes, epoch,
    classes, cluster_assignment, split_fingerprint, ...) from any model source
    (``trust``: see ``utils.checkpoint.load_checkpoint``; ``allow_class_change``:
    accept an export whose class table no longer matches its fingerprint)."""
    if source.startswith(HUB_PREFIX):
        from inference.hub import download

        return read_export(download(source), allow_class_change)
    path = Path(source)
    if (path / "model.safetensors").is_file():
        return read_export(path, allow_class_change)
    if (path / "checkpoints" / "last.pt").is_file():
        path = path / "checkpoints" / "last.pt"
    elif path.is_dir():
        raise CheckpointError(f"{source} is a folder but neither an export (model.safetensors + config.json) nor "
                              f"a run directory (checkpoints/last.pt); pass one of those or a .pt checkpoint")
    state = load_checkpoint(path, trust=trust)
    if isinstance(state, dict) and isinstance(state.get("config"), dict):
        state["config"] = upgrade_config(state["config"])
    return check_checkpoint(state, path, allow_class_change)


def check_class_table(state: dict, now: list[dict], source: str, allow: bool) -> list[dict]:
    """``now`` (the table the config's classes_file gives today), once it matches the fingerprint the
    model was trained with (or none was recorded); a differing one is refused naming the rows that
    changed, or with ``allow`` used as it is, with a warning."""
    recorded = state.get("class_fingerprint")
    if recorded is None or recorded == class_fingerprint(now):
        return now
    message = (f"the class table of classes_file={state['config'].get('classes_file') or '(OWDFA-40)'} differs from "
               f"the one {source} was trained with: {describe_class_change(state['classes'], now)}")
    if not allow:
        raise ClassTableError(f"{message}; restore that file, or pass --allow_class_change to evaluate with it")
    print(f"warning: {message}; evaluating with it (--allow_class_change)", file=sys.stderr)
    return now
