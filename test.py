"""Evaluate a checkpoint on its protocol's test split.

    python test.py --ckpt exp/owdfa40_p1/<stamp>/checkpoints/last.pt
    python test.py --ckpt best.pt --dataset_root /data/OWDFA40-Benchmark/data --out metrics.json

The model and the test split are rebuilt from the config stored in the
checkpoint (including the number of valid prototypes of a pruned model), so
evaluating a checkpoint gives exactly the numbers recorded for its epoch when
run on the same kind of device. Data whose split differs from the one the
checkpoint was trained on (its fingerprint) is refused unless
``--allow_split_change``; a checkpoint that is not plain tensors and values
(an old or foreign pickle) loads only with ``--trust_checkpoint``. Prints a
table; ``--out`` writes JSON with all_acc, known_acc, novel_acc, nmi, ari,
per-subset values, confidences and, with unknown K, the estimated and true
number of novel classes.

``--ckpt`` also takes a run directory, an export folder (export.py) or
``hf://REPO_ID[@rev]``. ``--save_predictions preds.csv`` writes one row per
test image (path, true, predicted, confidence, is_real, top3, error) and,
beside it, per_class.csv and confusion.csv / confusion.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file (a run's checkpoints/last.pt or best.pt), "
                        "run directory, export folder or hf://REPO_ID[@rev]")
    parser.add_argument("--dataset_root", default=None, help="dataset folder, if it moved since training")
    parser.add_argument("--out", default=None, help="write the metrics to this JSON file")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loader workers (default: the run's)")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    parser.add_argument("--allow_split_change", action="store_true",
                        help="evaluate although the data gives another split than the one trained on")
    parser.add_argument("--save_predictions", default=None, metavar="CSV",
                        help="per-image predictions; per_class.csv and confusion.csv/.png go beside it")
    return parser.parse_args(argv)


def load_for_evaluation(args):
    """Config, checkpoint state and a consistency check of checkpoint vs data."""
    from dataset.protocols import label_space
    from inference.loading import load_model_state
    from utils.config import ConfigError, defaults, merge, validate

    state = load_model_state(args.ckpt, trust=args.trust_checkpoint)
    overrides = {k: v for k, v in (("dataset_root", args.dataset_root), ("device", args.device),
                                   ("num_workers", args.num_workers)) if v is not None}
    cfg = merge(merge(defaults(), state["config"], args.ckpt), overrides, "the command line")
    cfg.pretrained = False  # the weights come from the checkpoint
    cfg.resume = ""
    validate(cfg)
    space = label_space(cfg)
    if state["num_classes"] != space.num_classes or state["num_known"] != space.num_known:
        raise ConfigError(f"checkpoint {args.ckpt} was trained with {state['num_classes']} classes, "
                          f"{state['num_known']} known, but {space.table.name} {space.name} of this code has "
                          f"{space.num_classes} classes, {space.num_known} known; evaluate it with the code and "
                          f"class table it was trained with")
    return cfg, state


def evaluate_checkpoint(args) -> dict:
    from dataset.owdfa import build_data, eval_loader
    from dataset.split_file import verify_split
    from trainer.device import use_bf16
    from trainer.distributed import resolve_device
    from trainer.evaluation import predict, prediction_metrics
    from inference.loading import restore_method
    from utils.run_dir import setup_logging

    setup_logging(None)
    cfg, state = load_for_evaluation(args)
    device = resolve_device(cfg.device)
    data = build_data(cfg, train=False)
    change = verify_split(data.record, state.get("split_fingerprint"), Path(args.ckpt).parent.parent / "split.json",
                          args.allow_split_change)
    if change:
        print(f"warning: {change}; evaluating anyway (--allow_split_change)", file=sys.stderr)
    method = restore_method(cfg, state, device)
    out = predict(method.predict, method.model, eval_loader(data, cfg), device, use_bf16(cfg.amp, cfg.image_size),
                  cfg.channels_last)
    metrics = prediction_metrics(out, data.split.num_known)
    if args.save_predictions:
        from inference.evaluation_report import save_test_report

        save_test_report(args.save_predictions, out, data.split, state)
    valid = method.net.prototypes.num_valid
    metrics.update(checkpoint=str(args.ckpt), epoch=state["epoch"], protocol=cfg.protocol,
                   label_space=data.split.space.title,
                   valid_prototypes=valid, selected_on_test_set=bool(state.get("selected_on_test_set")))
    if cfg.unknown_k:
        metrics["k_novel_estimate"] = valid - data.split.num_known
        metrics["k_novel_true"] = data.split.num_novel_in_test
        metrics["k_novel_error"] = metrics["k_novel_estimate"] - metrics["k_novel_true"]
    return metrics


def main(argv) -> int:
    from dataset.protocols import ClassTableError
    from dataset.split import DatasetError
    from trainer.checkpoint import CheckpointError
    from trainer.trainer import format_table
    from utils.config import ConfigError

    args = parse_args(argv)
    try:
        metrics = evaluate_checkpoint(args)
    except (ConfigError, ClassTableError, DatasetError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    note = " (best epoch, selected on the test set)" if metrics["selected_on_test_set"] else ""
    print(f"{args.ckpt}: epoch {metrics['epoch']}{note}, {metrics['label_space']}, "
          f"{metrics['num_test']} test images, {metrics['valid_prototypes']} valid prototypes")
    print(format_table(metrics))
    if args.save_predictions:
        print(f"predictions written to {args.save_predictions} (per_class.csv, confusion.csv and confusion.png "
              f"beside it)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
