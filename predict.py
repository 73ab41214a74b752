"""Attribute images and videos: which forgery method made each one (or is it real)?

    python predict.py --ckpt exp/owdfa40_p1/<stamp>/checkpoints/last.pt suspect.jpg clip.mp4 photos/ --out preds.csv
    find incoming -name '*.png' | python predict.py --ckpt export_dir - --out preds.csv
    python predict.py --ckpt hf://OWNER/NAME@v1 videos/ --frames 32 --per_frame --names my_clusters.csv

``--ckpt``: a checkpoint, a run directory, an export folder (export.py) or
``hf://REPO_ID[@rev]``. INPUT: image and video files (.mp4 .avi .mov .mkv
.webm), folders (searched recursively) and ``-`` for paths on stdin. One CSV
row per image and per video (docs/attribution.md): ``predicted`` is ``unknown``
below the model's abstain threshold, ``nearest`` the best class, ``novel-<j>``
a novel prototype (``--names`` names them). A video's answer pools its sampled
frames (``--frames``, ``--fps``, ``--video_rule``; ``--per_frame`` adds their
rows). Without ``--out`` the CSV goes to stdout.
"""
from __future__ import annotations

import argparse
import sys

from dataset.video_io import DEFAULT_FRAMES
from inference.video_pooling import DEFAULT_RULE, RULES


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint, run directory, export folder or hf://REPO_ID[@rev]")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image and video files, folders, or - for paths on stdin")
    parser.add_argument("--out", default=None, metavar="FILE.csv", help=".csv file to write (default: stdout)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="images or video frames per batch (default: the run's test_batch_size)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--num_workers", type=int, default=None, help="data-loader workers (default: the run's)")
    parser.add_argument("--names", default=None, metavar="NAMES.csv", help="CSV prototype,name naming novel prototypes")
    parser.add_argument("--min_confidence", type=float, default=0.0, metavar="P",
                        help="also predict unknown when the softmax confidence is below P (default 0: off)")
    parser.add_argument("--no_unknown", action="store_true",
                        help="never predict unknown: every image gets its nearest class")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    parser.add_argument("--allow_class_change", action="store_true",
                        help="use an export whose class table no longer matches its fingerprint")
    parser.add_argument("--crop_cache_dir", default=None, metavar="DIR", help="face-crop cache (default: a folder "
                        "per input folder under ~/.cache/owdfa_cal/crop_cache; used when the model crops faces)")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, default=None, metavar="N",
                          help=f"frames sampled evenly from each video (default {DEFAULT_FRAMES})")
    sampling.add_argument("--fps", type=float, default=None, metavar="F",
                          help="sample F frames per second of video instead (every frame at or above its rate)")
    parser.add_argument("--video_rule", choices=RULES, default=DEFAULT_RULE,
                        help=f"how a video's frames give its answer (default {DEFAULT_RULE}: measured in "
                             "docs/attribution.md)")
    parser.add_argument("--per_frame", action="store_true", help="also one row per sampled frame after each video's")
    return parser.parse_args(argv)


def main(argv) -> int:
    from inference.output_paths import check_file
    from utils.text import printable

    args = parse_args(argv)
    try:  # the arguments are checked before torch and timm are imported (seconds on a busy machine)
        if args.out:
            check_file(args.out, "--out", ".csv", "one CSV row per image and per video")
        if not 0 <= args.min_confidence <= 1:
            raise ValueError(f"--min_confidence {args.min_confidence} is not a probability; give one in [0, 1]")
        if args.frames is not None and args.frames < 1:
            raise ValueError(f"--frames {args.frames}: sample at least 1 frame per video")
        if args.fps is not None and not args.fps > 0:
            raise ValueError(f"--fps {args.fps} is not a rate; give frames per second above 0")
        from inference.attributor import Attributor, collect_inputs
        from inference.predictions import PREDICT_COLUMNS, summary, write_csv

        paths, skipped = collect_inputs(args.inputs)
        if skipped:
            print(f"skipped {skipped} {'file that is' if skipped == 1 else 'files that are'} neither an image nor a "
                  f"video ({KINDS})", file=sys.stderr)
        if not paths:
            raise ValueError(f"no image or video files found in {' '.join(args.inputs)} (looked for {KINDS})")
        attributor = Attributor.load(args.ckpt, args.device, args.names, args.trust_checkpoint,
                                     args.allow_class_change, args.min_confidence, not args.no_unknown)
        if attributor.abstain is None and not args.no_unknown:
            print("warning: this model carries no abstain threshold (calibrated when training ends, kept in "
                  "last.pt and its export), so only --min_confidence gives unknown", file=sys.stderr)
        rows = predict_rows(attributor, paths, args)
        write_csv(rows, args.out, PREDICT_COLUMNS)
    except (ValueError, RuntimeError, OSError) as err:  # ConfigError is a ValueError, CheckpointError a RuntimeError
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    print(summary(rows), file=sys.stdout if args.out else sys.stderr)
    if args.out:
        print(f"predictions written to {args.out}")
    return 0


KINDS = ".jpg .jpeg .png .mp4 .avi .mov .mkv .webm"


def predict_rows(attributor, paths: list[str], args) -> list[dict]:
    """The CSV rows of ``paths`` in their order: one per image, and per video its row (and, with
    ``--per_frame``, its frames' rows)."""
    from dataset.video_io import is_video_file
    from inference.predictions import image_rows, video_rows
    from inference.video_attribution import attribute_videos

    images = [i for i, path in enumerate(paths) if not is_video_file(path)]
    videos = list(dict.fromkeys(path for path in paths if is_video_file(path)))
    at = {}  # position in paths -> its rows
    if images:
        rows = attributor.predict_paths([paths[i] for i in images], args.batch_size, args.num_workers,
                                        args.crop_cache_dir)
        at.update((i, [row]) for i, row in zip(images, image_rows(rows)))
    of_video = {}
    if videos:
        for result in attribute_videos(attributor, videos, args.frames, args.fps, args.batch_size, args.num_workers,
                                       args.crop_cache_dir):
            of_video[result.path] = video_rows(result, attributor.names, attributor.real, attributor.abstain,
                                               attributor.min_confidence, args.video_rule, args.per_frame)
    return [row for i, path in enumerate(paths) for row in at.get(i) or of_video[path]]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
