"""The paper's ablation in miniature, and DPP's settings, on the mini dataset.

    python scripts/bench/ablation.py                       # 5 variants x 3 seeds, P1 split, ~50 min on 2 cores
    python scripts/bench/ablation.py --seeds 2025 --variants base full_known   # a quick look
    python scripts/bench/ablation.py --variants full_known full_unknown dpp_late --protocols 1 2 3 \\
        --parallel 8 device=cuda                           # one GPU, 8 runs at a time
    python scripts/bench/ablation.py --code /path/to/other/checkout ...   # the same runs with other code

``VARIANTS`` below lists each variant's config switches on top of
``--config`` (configs/demo.py): (a) supervised + regularisation, (b) + CCR, (c) + ACR,
(d) CAL with known K, (e) CAL with DPP, DPP settings beyond the paper and
posthoc. Every run of a protocol uses the same split; seeds vary the training. Writes
mean ± std over seeds of the last epoch's test metrics, the confidence skew
and the novel K (``--out``, Markdown, with per-run JSON updated after every
run); ``--posthoc`` also runs estimate_k.py on every run's last.pt.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from inference.results import mean_std  # noqa: E402

VARIANTS = {
    "base": ("(a) sup + reg", ["cal_ccr_weight=0", "cal_acr=false"]),
    "ccr": ("(b) + CCR", ["cal_acr=false"]),
    "acr": ("(c) + ACR", ["cal_ccr_weight=0"]),
    "full_known": ("(d) CAL, known K", []),
    "full_unknown": ("(e) CAL, unknown K (DPP)", ["unknown_k=true", "cal_novel_prototypes=paper"]),
    "dpp_move": ("DPP, Adam moments move", ["unknown_k=true", "cal_novel_prototypes=paper", "cal_prune_optimizer_state=move"]),
    "dpp_members": ("DPP, anchors keep members' norm", ["unknown_k=true", "cal_novel_prototypes=paper",
                                                        "cal_prune_anchor_norm=members"]),
    "dpp_late": ("DPP from epoch 5", ["unknown_k=true", "cal_novel_prototypes=paper", "cal_prune_start=5"]),
    "dpp_late_bounded": ("DPP from epoch 3, <= 1/2 per epoch", ["unknown_k=true", "cal_novel_prototypes=paper",
                                                               "cal_prune_start=3", "cal_prune_max_drop=0.5"]),
    "posthoc": ("post-hoc estimate sets K (cal_seed_epoch)", ["unknown_k=true", "cal_novel_prototypes=seeded"]),
}
COLUMNS = [("all_acc", "All"), ("known_acc", "Known"), ("novel_acc", "Novel"), ("nmi", "NMI"), ("ari", "ARI"),
           ("conf_known", "conf known"), ("conf_novel", "conf novel")]


def train(code: Path, config: str, dataset: Path, run_dir: Path, protocol: int, seed: int, overrides: list[str],
          posthoc: bool) -> dict:
    """One training run (and the post-hoc estimate); returns the last epoch's record."""
    cmd = [sys.executable, "train.py", config, f"dataset_root={dataset}", f"run_dir={run_dir}",
           f"protocol={protocol}", f"seed={seed}", *overrides]
    result = subprocess.run(cmd, cwd=code, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    record = {**history[-1], "valid_per_epoch": [r["valid_prototypes"] for r in history]}
    if posthoc:
        out = run_dir / "posthoc"
        cmd = [sys.executable, "estimate_k.py", "--ckpt", str(run_dir / "checkpoints" / "last.pt"),
               "--out", str(out)]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if done.returncode == 0 and (out / "k_curve.json").is_file():
            record["k_posthoc"] = json.loads((out / "k_curve.json").read_text()).get("k_novel")
    return record


def table(results: dict[str, list[dict]]) -> str:
    head = ("| variant | P | " + " | ".join(title for _, title in COLUMNS)
            + " | est. novel K | post-hoc K | true K |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, records in results.items():
        name, protocol = key.rsplit("/p", 1)
        cells = [mean_std([r.get(k) for r in records]) for k, _ in COLUMNS]
        estimate = mean_std([r.get("k_novel_estimate") for r in records], 1.0)
        posthoc = mean_std([r.get("k_posthoc") for r in records], 1.0)
        true_k = next((r["k_novel_true"] for r in records if "k_novel_true" in r), "")
        lines.append(f"| {VARIANTS[name][0]} | {protocol} | " + " | ".join(cells)
                     + f" | {estimate} | {posthoc} | {true_k} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_root", default=str(REPO / "data" / "mini"),
                        help="mini dataset (generated there when missing)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2025, 2026, 2027])
    parser.add_argument("--protocols", type=int, nargs="+", default=[1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:5], choices=list(VARIANTS))
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (one GPU holds several)")
    parser.add_argument("--posthoc", action="store_true", help="also run estimate_k.py on each run")
    parser.add_argument("--config", default="configs/demo.py",
                        help="the experiment the variants change, e.g. configs/demo_lite0.py (ImageNet weights)")
    parser.add_argument("--code", default=str(REPO), help="checkout whose train.py runs (before/after)")
    parser.add_argument("--out", default=str(REPO / "bench_results" / "ablation.md"))
    parser.add_argument("--runs_dir", default=str(REPO / "exp" / "ablation"))
    parser.add_argument("overrides", nargs="*", help="extra key=value for every run (e.g. epochs=6)")
    args = parser.parse_args(argv)

    dataset = Path(args.dataset_root).resolve()
    if not dataset.is_dir():
        from dataset.synthetic import generate
        generate(dataset)
    runs = Path(args.runs_dir).resolve() / time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(name, protocol, seed) for name in args.variants for protocol in args.protocols for seed in args.seeds]
    results: dict[str, list[dict]] = {f"{n}/p{p}": [] for n, p, _ in jobs}
    started = time.time()

    def one(job):
        name, protocol, seed = job
        t0 = time.time()
        try:
            record = train(Path(args.code), args.config, dataset, runs / f"{name}_p{protocol}_seed{seed}",
                           protocol, seed,
                           [*VARIANTS[name][1], *args.overrides], args.posthoc)
        except RuntimeError as err:
            print(f"FAILED {name} P{protocol} seed {seed}: {err}", flush=True)
            return
        results[f"{name}/p{protocol}"].append({"seed": seed, **record})
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        print(f"{VARIANTS[name][0]:<34} P{protocol} seed {seed}: all {record['all_acc']:.3f} "
              f"known {record['known_acc']:.3f} novel {record['novel_acc']:.3f} "
              f"valid {record['valid_per_epoch']} ({time.time() - t0:.0f} s)", flush=True)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(one, jobs))
    minutes = (time.time() - started) / 60
    text = (table({k: v for k, v in results.items() if v})
            + f"\n\nMean ± std over seeds {args.seeds}, last epoch, test split of the mini dataset. "
            f"Accuracies and confidences in %. Command: python scripts/bench/ablation.py "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}; {minutes:.1f} min.\n")
    out.write_text(text)
    print("\n" + text + f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
