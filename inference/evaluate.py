"""Evaluate a saved model on its protocol's test split (test.py's engine).

The model and the split are rebuilt from the config stored with the model;
a checkpoint whose class counts differ from this code's class table, or data
whose split differs from the one trained on, is refused with the fix named.
"""
from __future__ import annotations

import sys
from pathlib import Path

from inference.loading import check_class_table, load_model_state, restore_method


def load_for_evaluation(ckpt: str, trust: bool = False, dataset_root: str | None = None,
                        device: str | None = None, num_workers: int | None = None,
                        allow_class_change: bool = False, classes_file: str | None = None,
                        batch_size: int | None = None):
    """Config and checkpoint state of any model source, checked against this code's class table
    (its fingerprint: see ``inference.loading.check_class_table``). The flags' values replace the
    recorded ones: dataset folder, device, workers, class table file (moved, same content), and
    ``batch_size`` the evaluation batch (test_batch_size)."""
    from dataset.protocols import label_space
    from utils.config import ConfigError, merge, recorded_config, validate

    state = load_model_state(ckpt, trust=trust, allow_class_change=allow_class_change)
    overrides = {k: v for k, v in (("dataset_root", dataset_root), ("device", device),
                                   ("num_workers", num_workers), ("classes_file", classes_file),
                                   ("test_batch_size", batch_size)) if v is not None}
    cfg = merge(recorded_config(state["config"], ckpt), overrides, "the command line")
    cfg.pretrained = False  # the weights come from the checkpoint
    cfg.resume = ""
    validate(cfg)
    if cfg.classes_file and not Path(cfg.classes_file).expanduser().is_file():
        raise ConfigError(f"the class table {cfg.classes_file} that {ckpt} was trained with is not there; "
                          f"pass where it is now with --classes_file CSV")
    space = label_space(cfg)
    if state["num_classes"] != space.num_classes or state["num_known"] != space.num_known:
        raise ConfigError(f"checkpoint {ckpt} was trained with {state['num_classes']} classes, "
                          f"{state['num_known']} known, but {space.table.name} {space.name} of this code has "
                          f"{space.num_classes} classes, {space.num_known} known; evaluate it with the code and "
                          f"class table it was trained with")
    state["classes"] = check_class_table(state, space.class_rows(), ckpt, allow_class_change)
    return cfg, state


def run_split_json(ckpt: str) -> Path:
    """The split.json of the run a checkpoint belongs to: RUN_DIR/split.json for a run directory,
    the folder above checkpoints/ for a .pt file (an export has none: nothing there)."""
    path = Path(ckpt)
    return path / "split.json" if path.is_dir() else path.parent.parent / "split.json"


def evaluate_checkpoint(ckpt: str, trust: bool = False, allow_split_change: bool = False,
                        save_predictions: str | None = None, allow_class_change: bool = False,
                        video_rule: str | None = None, **overrides) -> dict:
    """Test-split metrics of ``ckpt`` (``overrides``: dataset_root, device, num_workers,
    classes_file, batch_size: ``load_for_evaluation``);
    with ``save_predictions`` also the report files of ``inference.evaluation_report``;
    with ``video_rule`` also the metrics over the test videos under ``by_video`` (``video_metrics``)."""
    from dataset.owdfa import build_data, eval_loader
    from dataset.split_file import verify_split
    from utils.device import use_bf16
    from utils.device import resolve_device
    from utils.evaluation import predict, prediction_metrics
    from utils.memory import memory_hint
    from utils.run_dir import setup_logging

    setup_logging(None)
    cfg, state = load_for_evaluation(ckpt, trust, allow_class_change=allow_class_change, **overrides)
    device = resolve_device(cfg.device)
    data = build_data(cfg, train=False)
    change = verify_split(data.record, state.get("split_fingerprint"), run_split_json(ckpt), allow_split_change)
    if change:
        print(f"warning: {change}; evaluating anyway (--allow_split_change)", file=sys.stderr)
    with memory_hint("evaluating", ("--batch_size ", cfg.test_batch_size)):
        method = restore_method(cfg, state, device)
        out = predict(method.predict, method.model, eval_loader(data, cfg), device,
                      use_bf16(cfg.amp, cfg.image_size), cfg.channels_last,
                      method.features if save_predictions else None, progress=True,
                      probabilities=video_rule is not None)
    metrics = prediction_metrics(out, data.split.num_known)
    if video_rule is not None:
        metrics["by_video"] = video_metrics(out, data.split, cfg.dataset_root, video_rule)
    # found unreadable at the image check (left out of the split) or only when read: counted alike
    metrics["unreadable_test_images"] += len(data.record.left_out)
    valid = method.net.prototypes.num_valid
    metrics.update(checkpoint=str(ckpt), epoch=state["epoch"], protocol=cfg.protocol,
                   label_space=data.split.space.title,
                   valid_prototypes=valid, selected_on_test_set=bool(state.get("selected_on_test_set")))
    if cfg.unknown_k:
        metrics["k_novel_estimate"] = valid - data.split.num_known
        metrics["k_novel_true"] = data.split.num_novel_in_test
        metrics["k_novel_error"] = metrics["k_novel_estimate"] - metrics["k_novel_true"]
    if save_predictions:
        from inference.evaluation_report import save_test_report

        save_test_report(save_predictions, out, data.split, state, metrics,
                         method.prototype_rows(), run_split_json(ckpt).parent)
    return metrics


def video_metrics(out: dict, split, root: str, rule: str) -> dict:
    """The metrics of ``prediction_metrics`` over the test videos: the test frames grouped by the
    video their names give (dataset/video_groups.py), each video answered by pooling its frames'
    probabilities (``out["prob"]``) with ``rule`` (inference/video_pooling.py); beside them the
    number of videos and of test frames per video."""
    import numpy as np

    from dataset.video_groups import class_folder_of, video_of
    from inference.video_pooling import pool_frames
    from utils.metrics import attribution_metrics

    folders = split.space.table.class_folders()
    groups: dict[str, list[int]] = {}
    for row, index in enumerate(out["index"].tolist()):
        path = split.test_paths[index]
        folder = class_folder_of(path, root, folders, int(split.test_orig[index]))
        groups.setdefault(video_of(path, root, folder), []).append(row)
    answers = [pool_frames(out["prob"][rows], rule) for rows in groups.values()]
    metrics = attribution_metrics([out["label"][rows[0]] for rows in groups.values()], [a.index for a in answers],
                                  split.num_known, [a.probability for a in answers])
    sizes = [len(rows) for rows in groups.values()]
    metrics.update(rule=rule, videos=len(groups), frames_min=min(sizes), frames_median=float(np.median(sizes)),
                   frames_max=max(sizes))
    return metrics
