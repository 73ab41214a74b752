"""Time the post-hoc novel-K estimator (discovery/k_estimation.py) on synthetic features.

    python scripts/bench/k_estimation.py                                   # 20k x 512, K_known 20 (K up to 60), CPU
    python scripts/bench/k_estimation.py --rows 100000 --num_known 40 --num_novel 40 --device cuda

Gaussian blobs around random unit centres in D dimensions, 75 % of every
known class labelled (as in the OWDFA-40 split). Prints the wall time of the
whole sweep, the time per K and the chosen vs true novel K.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from discovery.k_estimation import estimate_novel_k  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--num_known", type=int, default=20)
    parser.add_argument("--num_novel", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.03, help="per-dimension noise around unit centres")
    parser.add_argument("--n_init", type=int, default=10)
    parser.add_argument("--probe_draws", type=int, default=12)
    parser.add_argument("--max_rows", type=int, default=30000, help="as estimate_k.py (0: all rows)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    classes = args.num_known + args.num_novel
    centres = rng.normal(size=(classes, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, classes, args.rows)
    x = centres[y] + args.noise * rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    labels = np.where((y < args.num_known) & (rng.random(args.rows) < 0.75), y, -1)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = estimate_novel_k(x, labels, args.num_known, n_init=args.n_init, probe_draws=args.probe_draws,
                              device=args.device, max_rows=args.max_rows or None)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"{args.rows} x {args.dim}, K {args.num_known}..{max(result.ks)}, n_init {args.n_init}, "
          f"{args.probe_draws} probe draws, "
          f"{args.device} ({torch.get_num_threads()} threads): {seconds:.1f} s, {seconds / len(result.ks):.2f} s per K; "
          f"novel K {result.k_novel} (true {args.num_novel}){' ' + result.message if result.message else ''}")


if __name__ == "__main__":
    main()
