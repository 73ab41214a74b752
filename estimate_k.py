"""Estimate the number of novel classes post hoc from a trained checkpoint.

    python estimate_k.py --ckpt exp/owdfa40_p1/<stamp>/checkpoints/last.pt
    python estimate_k.py --ckpt last.pt --k_max 80 --device cuda --out k_out/

Rebuilds the model and the training split from the checkpoint's config, extracts the
L2-normalised BNNeck features of every training image (labelled and unlabelled, test view, no
dropout), sweeps semi-supervised k-means over the total K in [K_known, k_max] and scores each K on
known classes held out of the clustering's labels (discovery/k_estimation.py explains the score).
Prints the chosen novel K, the truth where the split knows it and the error; writes
``k_curve.png`` and ``k_curve.json`` to the folder ``--out`` (default: the run folder; checked
before any work). Progress bars on stderr: crop check, feature extraction, the K sweep. Exit
status: 0 estimate made, 2 bad input (checkpoint, config, data, --out) or out of memory (naming
the --batch_size to try), 3 the features allow no estimate (the reason is printed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file (a run's checkpoints/last.pt or best.pt), "
                        "run directory or export folder")
    parser.add_argument("--k_max", type=int, default=None, help="largest total K tried (default: from 3 x K_known, "
                        "grown by K_known while the best K is the largest tried, up to 10 x K_known)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="images per forward pass (default: the run's test_batch_size)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for k_curve.png and k_curve.json (created; default: the run's)")
    parser.add_argument("--dataset_root", default=None, metavar="DIR",
                        help="dataset folder, if it moved since training")
    parser.add_argument("--classes_file", default=None, metavar="CLASSES.csv",
                        help="class table file, if it moved since training (same content)")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loader workers (default: the run's)")
    parser.add_argument("--max_rows", type=int, default=30000,
                        help="cluster a seeded random subset of this many images (default 30000; 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe draws and the k-means restarts")
    parser.add_argument("--hold_out", type=int, default=0, metavar="N",
                        help="also measure the estimator's bias: hide the labels of N known classes, so they count "
                             "as novel ones whose number is known, estimate again and report the miss (default 0: no)")
    parser.add_argument("--hold_out_draws", type=int, default=3, metavar="D",
                        help="with --hold_out: how many different sets of N classes to hold out (default 3)")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    return parser.parse_args(argv)


def training_features(args):
    """(features [N, D], labels [N] with -1 unlabelled, split, device) of the checkpoint's training images."""
    from dataset.owdfa import build_data, eval_loader, train_eval_set
    from inference.evaluate import load_for_evaluation
    from inference.loading import restore_method
    from utils.device import use_bf16
    from utils.device import resolve_device
    from utils.evaluation import extract_features
    from utils.memory import memory_hint

    cfg, state = load_for_evaluation(args.ckpt, args.trust_checkpoint, args.dataset_root, args.device,
                                     args.num_workers, classes_file=args.classes_file, batch_size=args.batch_size)
    device = resolve_device(cfg.device)
    data = build_data(cfg, train=True)
    with memory_hint("extracting features", ("--batch_size ", cfg.test_batch_size)):
        method = restore_method(cfg, state, device)
        loader = eval_loader(data, cfg, dataset=train_eval_set(data))
        features, labels = extract_features(method.net.features, method.model, loader, device,
                                            use_bf16(cfg.amp, cfg.image_size), cfg.channels_last, progress=True)
    return features, labels, data.split, device


def hold_out_misses(args, features, labels, num_known: int, true_novel: int, device) -> list[dict]:
    """The estimate again with ``--hold_out`` known classes unlabelled, for ``--hold_out_draws``
    sets of classes (folds of seeded permutations): each draw's held-out classes, its estimate,
    the truth (novel + held out) and the miss."""
    import numpy as np

    from discovery.k_estimation import estimate_novel_k, hold_out_known, probe_sets

    rng = np.random.default_rng(args.seed + 1)
    draws = []
    for held in probe_sets(rng, num_known, args.hold_out, args.hold_out_draws):
        draw_labels, visible = hold_out_known(labels, num_known, held)
        estimate = estimate_novel_k(features, draw_labels, visible, args.k_max, seed=args.seed, device=device,
                                    max_rows=args.max_rows or None, progress=True)
        truth = true_novel + len(held)
        miss = None if estimate.k_novel is None else estimate.k_novel - truth
        draws.append({"held_out": held.tolist(), "k_novel": estimate.k_novel, "k_novel_true": truth,
                      "error": miss, "relative_error": None if miss is None else round(miss / truth, 4)})
    return draws


def print_hold_out(draws: list[dict], count: int) -> None:
    """One line per held-out draw and the mean miss (None estimates are named, not averaged)."""
    for draw in draws:
        found = "no estimate" if draw["k_novel"] is None else f"{draw['k_novel']} (error {draw['error']:+d})"
        print(f"held out known classes {draw['held_out']}: novel K {found} of {draw['k_novel_true']}")
    misses = [draw["relative_error"] for draw in draws if draw["relative_error"] is not None]
    if misses:
        print(f"bias with {count} known classes held out: mean error {100 * sum(misses) / len(misses):+.1f} % over "
              f"{len(misses)} draws (negative: the estimator counts too few on these features)")


def main(argv) -> int:
    from dataset.split import DatasetError
    from inference.output_paths import check_folder
    from inference.predictions import OutputError
    from utils.checkpoint import CheckpointError
    from utils.config import ConfigError
    from discovery.k_estimation import estimate_novel_k
    from utils.memory import OutOfMemory
    from utils.plotting import plot_k_curve
    from utils.run_dir import setup_logging
    from utils.text import printable

    args = parse_args(argv)
    setup_logging(None)
    if args.hold_out < 0 or args.hold_out_draws < 1:
        print("error: --hold_out must be >= 0 and --hold_out_draws >= 1", file=sys.stderr)
        return 2
    source = Path(args.ckpt).resolve()
    out_dir = Path(args.out) if args.out else source if source.is_dir() else source.parent.parent
    try:
        check_folder(out_dir, "--out", "k_curve.png and k_curve.json")
        features, labels, split, device = training_features(args)
    except (ConfigError, DatasetError, CheckpointError, OutputError, OutOfMemory) as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    if args.hold_out >= split.num_known:
        print(f"error: --hold_out {args.hold_out} would leave no known class labelled; at most "
              f"{split.num_known - 1} of the {split.num_known} known classes", file=sys.stderr)
        return 2
    estimate = estimate_novel_k(features, labels, split.num_known, args.k_max, seed=args.seed, device=device,
                                max_rows=args.max_rows or None, progress=True)
    true_novel = split.num_novel_in_test
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"checkpoint": str(args.ckpt), "num_images": int(len(labels)),
              "num_labelled": int((labels >= 0).sum()), "k_novel_true": true_novel, **estimate.to_dict()}
    if estimate.k_novel is not None:
        record["k_novel_error"] = estimate.k_novel - true_novel
    if args.hold_out and not estimate.degenerate:
        record["hold_out"] = hold_out_misses(args, features, labels, split.num_known, true_novel, device)
    (out_dir / "k_curve.json").write_text(json.dumps(record, indent=2) + "\n")
    if estimate.degenerate:
        print(f"error: no estimate: {estimate.message}", file=sys.stderr)
        return 3
    plot_k_curve(record, out_dir / "k_curve.png", true_novel)
    print(f"{args.ckpt}: {len(labels)} training images ({record['num_labelled']} labelled), "
          f"{split.num_known} known classes, probe classes per draw {estimate.probe_classes}")
    if estimate.message:
        print(f"note: {estimate.message}")
    print(f"estimated novel K: {estimate.k_novel} (true {true_novel}, error {record['k_novel_error']:+d}); "
          f"total K {estimate.k_total}; the best mean score is at {estimate.k_best_score}; the estimate is the "
          f"last K above it still tied with it (within one standard error)")
    low, high = estimate.near_best()
    print(f"novel K scoring within 0.01 of the best: {low}-{high}" + (" (a flat curve: these features do not pin "
                                                                      "K down)" if high - low > 2 else ""))
    if record.get("hold_out"):
        print_hold_out(record["hold_out"], args.hold_out)
    print(f"curve written to {out_dir / 'k_curve.png'} and {out_dir / 'k_curve.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
