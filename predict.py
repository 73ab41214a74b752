"""Attribute images: which forgery method made each one (or is it real)?

    python predict.py --ckpt exp/owdfa40_p1/<stamp>/checkpoints/last.pt suspect.jpg photos/ --out preds.csv
    find incoming -name '*.png' | python predict.py --ckpt export_dir - --out preds.csv
    python predict.py --ckpt hf://OWNER/NAME@v1 images/ --names my_clusters.csv

``--ckpt``: a checkpoint, a run directory, an export folder (export.py) or
``hf://REPO_ID[@rev]``. INPUT: image files, folders (searched recursively;
other files counted, skipped) and ``-`` for paths on stdin. One CSV row per
image (docs/attribution.md): ``predicted`` is ``unknown`` below the model's
calibrated abstain threshold (``--min_confidence``, ``--no_unknown``),
``nearest`` the best class; novel prototypes print as ``novel-<j> (~Class, P%
pure)`` when the final evaluation matched them (``--names``: CSV
prototype,name). Without ``--out`` the CSV goes to stdout; ``--out`` is
checked before any image is read.
"""
from __future__ import annotations

import argparse
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint, run directory, export folder or hf://REPO_ID[@rev]")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or - for paths on stdin")
    parser.add_argument("--out", default=None, metavar="FILE.csv", help=".csv file to write (default: stdout)")
    parser.add_argument("--batch_size", type=int, default=None, help="images per batch (default: the run's "
                        "test_batch_size)")
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
    return parser.parse_args(argv)


def main(argv) -> int:
    from inference.output_paths import check_file
    from utils.text import printable

    args = parse_args(argv)
    try:  # the arguments are checked before torch and timm are imported (seconds on a busy machine)
        if args.out:
            check_file(args.out, "--out", ".csv", "one CSV row per image")
        if not 0 <= args.min_confidence <= 1:
            raise ValueError(f"--min_confidence {args.min_confidence} is not a probability; give one in [0, 1]")
        from inference.attributor import Attributor, collect_inputs
        from inference.predictions import summary, write_csv

        paths, skipped = collect_inputs(args.inputs)
        if skipped:
            print(f"skipped {skipped} {'file that is' if skipped == 1 else 'files that are'} not .jpg/.jpeg/.png",
                  file=sys.stderr)
        if not paths:
            raise ValueError(f"no image files found in {' '.join(args.inputs)} (looked for .jpg, .jpeg, .png)")
        attributor = Attributor.load(args.ckpt, args.device, args.names, args.trust_checkpoint,
                                     args.allow_class_change, args.min_confidence, not args.no_unknown)
        if attributor.abstain is None and not args.no_unknown:
            print("warning: this model carries no abstain threshold (calibrated when training ends, kept in "
                  "last.pt and its export), so only --min_confidence gives unknown", file=sys.stderr)
        rows = attributor.predict_paths(paths, args.batch_size, args.num_workers, args.crop_cache_dir)
        write_csv(rows, args.out)
    except (ValueError, RuntimeError, OSError) as err:  # ConfigError is a ValueError, CheckpointError a RuntimeError
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    print(summary(rows), file=sys.stdout if args.out else sys.stderr)
    if args.out:
        print(f"predictions written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
