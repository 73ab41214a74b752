"""Export a trained run as shareable weights: no pickle, no optimiser.

    python export.py exp/owdfa40_p1/<stamp> --out cal_p1
    python export.py exp/owdfa40_p1/<stamp> --push_to_hub OWNER/cal-owdfa40-p1

Writes model.safetensors, config.json (config, class table, valid prototype
count, cluster names, split fingerprint, metrics) and a model card README.md
(inference/export.py). RUN_DIR may also be a checkpoint file. The folder loads
with ``--ckpt DIR`` in predict.py and test.py; after ``--push_to_hub`` with
``--ckpt hf://OWNER/NAME``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or a checkpoint file)")
    parser.add_argument("--out", default=None, help="export folder (default: RUN_DIR/export)")
    parser.add_argument("--checkpoint", choices=("last", "best"), default="last",
                        help="which checkpoint of the run (best is selected on the test set)")
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="upload to this hub model repo")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an old or foreign pickle checkpoint (it can run code: only from a trusted source)")
    parser.add_argument("--private", action="store_true", help="create the hub repo as private")
    return parser.parse_args(argv)


def main(argv) -> int:
    from trainer.checkpoint import CheckpointError
    from inference.export import checkpoint_of, export_checkpoint, write_card
    from inference.hub import push

    args = parse_args(argv)
    checkpoint = checkpoint_of(args.run_dir, args.checkpoint)
    out = Path(args.out) if args.out else checkpoint.parent.parent / "export"
    try:
        export_checkpoint(checkpoint, out, args.trust_checkpoint)
        sizes = {p.name: p.stat().st_size for p in out.iterdir()}
        print(f"exported {checkpoint} ({checkpoint.stat().st_size / 1e6:.1f} MB) to {out}: "
              + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items())))
        if args.push_to_hub:
            write_card(out, args.push_to_hub)
            url = push(out, args.push_to_hub, args.private)
            print(f"pushed to {args.push_to_hub}: {url}\nload it with --ckpt hf://{args.push_to_hub}")
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
