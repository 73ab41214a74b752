"""Export a trained run as shareable weights: no pickle, no optimiser.

    python export.py --ckpt exp/owdfa40_p1/<stamp> --out cal_p1
    python export.py --ckpt exp/owdfa40_p1/<stamp> --push_to_hub OWNER/cal-owdfa40-p1

Writes model.safetensors, config.json (config, class table, valid prototype
count, cluster names, split fingerprint, metrics) and a model card README.md
(inference/export.py), readable by everyone (mode 0644 under the usual umask),
into a new or empty folder or over an earlier export (a folder of other files
is refused).
``--ckpt`` is a run directory (its ``--checkpoint``, last.pt by default) or a
checkpoint file. The folder loads with ``--ckpt DIR`` in predict.py and
test.py; after ``--push_to_hub`` with ``--ckpt hf://OWNER/NAME``, which the
card then names (a failed push leaves the card as it was). Exit codes: 0
done, 2 bad input or a failed push.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="run directory (exp/<experiment>/<timestamp>) or a "
                        "checkpoint file")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="export folder to write (created; default: the run's export/)")
    parser.add_argument("--checkpoint", choices=("last", "best"), default="last",
                        help="with a run directory: which checkpoint (best is selected on the test set)")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="upload to this hub model repo")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    parser.add_argument("--private", action="store_true", help="create the hub repo as private")
    return parser.parse_args(argv)


def main(argv) -> int:
    from inference.export import (CARD, CONFIG, WEIGHTS, check_export_folder, checkpoint_of, export_checkpoint,
                                  write_card)
    from inference.hub import push
    from inference.output_paths import check_folder
    from inference.predictions import OutputError
    from utils.checkpoint import CheckpointError
    from utils.text import printable

    args = parse_args(argv)
    checkpoint = checkpoint_of(args.ckpt, args.checkpoint)
    out = Path(args.out) if args.out else checkpoint.parent.parent / "export"
    try:
        check_folder(out, "--out", "the export (model.safetensors, config.json, README.md)")
        check_export_folder(out)
        export_checkpoint(checkpoint, out, args.trust_checkpoint)
        sizes = {name: (out / name).stat().st_size for name in (WEIGHTS, CONFIG, CARD)}
        print(f"exported {checkpoint} ({checkpoint.stat().st_size / 1e6:.1f} MB) to {out}: "
              + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items())))
        if args.push_to_hub:
            write_card(out, args.push_to_hub)  # the card uploaded names where it is
            try:
                url = push(out, args.push_to_hub, args.private)
            except BaseException:  # a refused or interrupted push: the card must not claim the hub
                write_card(out)
                raise
            print(f"pushed to {args.push_to_hub}: {url}\nload it with --ckpt hf://{args.push_to_hub}")
    except (CheckpointError, OutputError, OSError) as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
