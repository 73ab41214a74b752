"""Evaluate a checkpoint on its protocol's test split.

    python test.py --ckpt exp/owdfa40_p1/<stamp>/checkpoints/last.pt
    python test.py --ckpt cal_p1 --classes_file tables/my_classes.csv --out metrics.json

The model and the test split are rebuilt from the config stored in the
checkpoint, so it evaluates to the numbers recorded for its epoch on the same
kind of device; ``--ckpt`` also takes a run directory, an export folder or
``hf://REPO_ID[@rev]``. Another split is refused unless
``--allow_split_change``, a pickle unless ``--trust_checkpoint``;
``--dataset_root`` / ``--classes_file``: where data and class table moved to.
Prints a table (``--by_video``: one more over the test videos); ``--out``
writes the metrics to a .json file, ``--save_predictions`` a .csv row per test
image with report.md, per_class.csv, clusters.csv and confusion.csv/.png beside
it. Exit: 0 done, 2 bad input or out of memory (naming the --batch_size to try).
"""
from __future__ import annotations

import argparse
import json
import sys

from inference.video_pooling import DEFAULT_RULE, RULES


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint file (a run's checkpoints/last.pt or best.pt), "
                        "run directory, export folder or hf://REPO_ID[@rev]")
    parser.add_argument("--dataset_root", default=None, metavar="DIR",
                        help="dataset folder, if it moved since training")
    parser.add_argument("--classes_file", default=None, metavar="CLASSES.csv",
                        help="class table file, if it moved since training (same content)")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="write the metrics to this .json file")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="images per forward pass (default: the run's test_batch_size)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the run's)")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loader workers (default: the run's)")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    parser.add_argument("--allow_split_change", action="store_true",
                        help="evaluate although the data gives another split than the one trained on")
    parser.add_argument("--allow_class_change", action="store_true",
                        help="evaluate although the class table differs from the one trained with")
    parser.add_argument("--by_video", action="store_true",
                        help="also the metrics over the test videos: frames grouped by the video their folder or "
                             "file name gives, each video answered by --video_rule")
    parser.add_argument("--video_rule", choices=RULES, default=None,
                        help=f"with --by_video: how a video's frames give its answer (default {DEFAULT_RULE})")
    parser.add_argument("--save_predictions", default=None, metavar="FILE.csv",
                        help="per-image predictions to this .csv file; report.md, per_class.csv, "
                        "clusters.csv and confusion.csv/.png go beside it")
    args = parser.parse_args(argv)
    if args.video_rule and not args.by_video:
        parser.error("--video_rule applies only with --by_video")
    return args


def main(argv) -> int:
    from dataset.protocols import ClassTableError
    from dataset.split import DatasetError
    from inference.evaluate import evaluate_checkpoint
    from inference.output_paths import check_file
    from inference.predictions import OutputError
    from utils.checkpoint import CheckpointError
    from utils.tables import format_table
    from utils.config import ConfigError
    from utils.disk import write_atomic
    from utils.memory import OutOfMemory
    from utils.text import printable

    args = parse_args(argv)
    try:
        for flag, path, suffix, what in (("--out", args.out, ".json", "the metrics as JSON"),
                                         ("--save_predictions", args.save_predictions, ".csv",
                                          "one CSV row per test image")):
            if path:
                check_file(path, flag, suffix, what)
        metrics = evaluate_checkpoint(args.ckpt, args.trust_checkpoint, args.allow_split_change,
                                      args.save_predictions, args.allow_class_change,
                                      dataset_root=args.dataset_root, device=args.device,
                                      num_workers=args.num_workers, classes_file=args.classes_file,
                                      batch_size=args.batch_size,
                                      video_rule=(args.video_rule or DEFAULT_RULE) if args.by_video else None)
        if args.out:
            write_atomic(args.out, json.dumps(metrics, indent=2) + "\n")
    except (ConfigError, ClassTableError, DatasetError, CheckpointError, OutputError, OutOfMemory, OSError) as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    note = " (best epoch, selected on the test set)" if metrics["selected_on_test_set"] else ""
    unreadable = metrics.get("unreadable_test_images") or 0
    print(f"{args.ckpt}: epoch {metrics['epoch']}{note}, {metrics['label_space']}, "
          f"{metrics['num_test']} test images"
          + (f" ({unreadable} more unreadable, left out: listed above)" if unreadable else "")
          + f", {metrics['valid_prototypes']} valid prototypes")
    print(format_table(metrics))
    if args.by_video:
        videos = metrics["by_video"]
        print(f"by video: {videos['videos']} videos of {videos['frames_min']}-{videos['frames_max']} test frames "
              f"(median {videos['frames_median']:g}), each answered by the {videos['rule']} rule"
              + (" (no video names found: one frame per video)" if videos["frames_max"] == 1 else ""))
        print(format_table(videos))
    if args.save_predictions:
        print(f"predictions written to {args.save_predictions} (report.md, per_class.csv, clusters.csv, "
              f"confusion.csv and confusion.png beside it)")
    if args.out:
        print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
