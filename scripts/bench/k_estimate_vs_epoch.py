"""The post-hoc novel-K estimator's time beside one training epoch of the same run.

    python scripts/bench/k_estimate_vs_epoch.py --ckpt exp/demo/<stamp>/checkpoints/last.pt [--ckpt ...]

For each checkpoint: extracts its training images' features once (as
estimate_k.py does), times the estimator at the run's seed (as training runs
it) with the default settings and with the reference settings (every K of a
range up to 40 values, all feature dimensions), and prints both beside the
seconds of the checkpoint's last training epoch (as its run measured them on
this machine), with the novel K each setting chose.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SETTINGS = {"default": {}, "reference": {"max_points": 40, "dims": None}}


def main() -> None:
    from estimate_k import training_features
    from utils.checkpoint import load_checkpoint
    from discovery.k_estimation import estimate_novel_k

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", action="append", required=True, help="a training checkpoint (repeatable)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    print("| checkpoint | epoch s | " + " | ".join(f"{name} s (novel K)" for name in args.settings) + " | true K |")
    print("|---|---|" + "---|" * len(args.settings) + "---|")
    for ckpt in args.ckpt:
        state = load_checkpoint(ckpt)
        history, seed = state["history"], state["config"]["seed"]
        epoch_seconds = history[-1]["seconds"] if history else float("nan")
        features, labels, split, device = training_features(SimpleNamespace(
            ckpt=ckpt, dataset_root=None, device="cpu", num_workers=None, batch_size=None, trust_checkpoint=False))
        cells = []
        for name in args.settings:
            start = time.perf_counter()
            result = estimate_novel_k(features, labels, split.num_known, seed=seed, device=device,
                                      **SETTINGS[name])
            cells.append(f"{time.perf_counter() - start:.1f} ({result.k_novel})")
        print(f"| {ckpt} | {epoch_seconds:.1f} | " + " | ".join(cells) + f" | {split.num_novel_in_test} |",
              flush=True)


if __name__ == "__main__":
    main()
