"""The paper's ablation in miniature: which CAL term helps, on the mini dataset.

    python scripts/bench/ablation.py                       # 5 variants x 3 seeds, P1 split, ~50 min on 2 cores
    python scripts/bench/ablation.py --seeds 2025 --variants base full_known   # a quick look

Variants (configs/base.py switches on top of configs/demo.py):
  (a) base        supervised + prior regularisation   ccr_weight=0 acr=false
  (b) +CCR        confidence-aware consistency         acr=false
  (c) +ACR        asymmetric pseudo-labels             ccr_weight=0
  (d) full        CAL with known K
  (e) full, unknown K   CAL with Dynamic Prototype Pruning   unknown_k=true
Every run uses the same split (split_seed fixed); seeds vary the training
(initialisation, sampling, augmentation, dropout). The table reports mean ±
std over seeds of the last epoch's test metrics, the mean test confidence on
known vs novel images (the "confidence skew") and DPP's estimated novel K.
Writes a markdown table (``--out``) and the raw per-run numbers beside it as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

VARIANTS = {
    "base": ("(a) sup + reg", ["ccr_weight=0", "acr=false"]),
    "ccr": ("(b) + CCR", ["acr=false"]),
    "acr": ("(c) + ACR", ["ccr_weight=0"]),
    "full_known": ("(d) CAL, known K", []),
    "full_unknown": ("(e) CAL, unknown K (DPP)", ["unknown_k=true"]),
}
COLUMNS = [("all_acc", "All"), ("known_acc", "Known"), ("novel_acc", "Novel"), ("nmi", "NMI"), ("ari", "ARI"),
           ("conf_known", "conf known"), ("conf_novel", "conf novel")]


def train(dataset: Path, run_dir: Path, seed: int, overrides: list[str]) -> dict:
    """One training run; returns the last epoch's record."""
    cmd = [sys.executable, "train.py", "configs/demo.py", f"dataset_root={dataset}", f"run_dir={run_dir}",
           f"seed={seed}", *overrides]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]


def mean_std(values: list[float | None], scale: float = 100.0) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean = statistics.mean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def table(results: dict[str, list[dict]], true_k: int | None) -> str:
    head = "| variant | " + " | ".join(title for _, title in COLUMNS) + " | est. novel K |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, records in results.items():
        cells = [mean_std([r.get(key) for r in records]) for key, _ in COLUMNS]
        k = [r["k_novel_estimate"] for r in records if "k_novel_estimate" in r]
        k_std = statistics.stdev(k) if len(k) > 1 else 0.0
        k_cell = f"{statistics.mean(k):.1f} ± {k_std:.1f} (true {true_k})" if k else ""
        lines.append(f"| {VARIANTS[name][0]} | " + " | ".join(cells) + f" | {k_cell} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_root", default=str(REPO / "data" / "mini"),
                        help="mini dataset (generated there when missing)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2025, 2026, 2027])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(REPO / "bench_results" / "ablation.md"))
    parser.add_argument("--runs_dir", default=str(REPO / "exp" / "ablation"))
    parser.add_argument("overrides", nargs="*", help="extra key=value for every run (e.g. epochs=6)")
    args = parser.parse_args(argv)

    dataset = Path(args.dataset_root)
    if not dataset.is_dir():
        from dataset.synthetic import generate
        generate(dataset)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.time()
    results: dict[str, list[dict]] = {}
    for name in args.variants:
        for seed in args.seeds:
            run_dir = Path(args.runs_dir) / stamp / f"{name}_seed{seed}"
            t0 = time.time()
            record = train(dataset, run_dir, seed, [*VARIANTS[name][1], *args.overrides])
            results.setdefault(name, []).append(record)
            print(f"{VARIANTS[name][0]:<28} seed {seed}: all {record['all_acc']:.3f} known {record['known_acc']:.3f} "
                  f"novel {record['novel_acc']:.3f} ({time.time() - t0:.0f} s)", flush=True)
    true_k = next((r["k_novel_true"] for rs in results.values() for r in rs if "k_novel_true" in r), None)
    minutes = (time.time() - started) / 60
    text = (table(results, true_k) + f"\n\nMean ± std over seeds {args.seeds}, last epoch, test split of the mini "
            f"dataset (P1: 19 known, 22 novel). Accuracies and confidences in %. "
            f"Command: python scripts/bench/ablation.py {' '.join(argv if argv is not None else sys.argv[1:])}; "
            f"{minutes:.0f} min.\n")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n" + text + f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
