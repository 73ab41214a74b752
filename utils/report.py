"""Remake a run's plots from the files in its directory.

    python -m utils.report exp/owdfa40_p1/<stamp>

At the end of training the trainer writes ``test_outputs.npz`` (the last
epoch's test labels, predictions and confidences, and the feature vectors of
a seeded subsample of at most 2,000 test images) beside ``metrics.jsonl``,
``config.json`` and ``summary.json``; this module draws every plot from
those files alone, so re-plotting needs neither the model nor the dataset.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from utils.plotting import plot_run

OUTPUTS_FILE = "test_outputs.npz"
MAX_TSNE_POINTS = 2000


class ReportError(RuntimeError):
    pass


def save_test_outputs(run_path: Path, label: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                      features: np.ndarray, names: list[str], seed: int = 0) -> None:
    """Write the test arrays, with features of a seeded subsample (float16), to ``test_outputs.npz``."""
    rows = np.random.default_rng(seed).permutation(len(label))[:MAX_TSNE_POINTS]
    rows.sort()
    tmp = run_path / f".{OUTPUTS_FILE}.tmp.npz"
    np.savez_compressed(tmp, label=label, pred=pred, confidence=confidence, feature_rows=rows,
                        features=np.asarray(features)[rows].astype(np.float16), names=np.array(names))
    tmp.replace(run_path / OUTPUTS_FILE)


def load_test_outputs(run_path: Path) -> dict | None:
    path = run_path / OUTPUTS_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        out = {key: data[key] for key in data.files}
    out["feature_label"] = out["label"][out["feature_rows"]]
    return out


def make_report(run_path: str | Path) -> list[str]:
    """Draw every plot of the run in ``run_path``; returns the file names written."""
    run_path = Path(run_path)
    files = {name: run_path / name for name in ("metrics.jsonl", "summary.json", "config.json")}
    absent = [name for name, path in files.items() if not path.is_file()]
    if absent:
        raise ReportError(f"{run_path} lacks {', '.join(absent)}: pass the directory of a finished run "
                          f"(exp/<experiment>/<timestamp>; summary.json is written when training ends)")
    history = [json.loads(line) for line in files["metrics.jsonl"].read_text().splitlines() if line.strip()]
    summary = json.loads(files["summary.json"].read_text())
    config = json.loads(files["config.json"].read_text())
    if "num_known" not in summary:
        raise ReportError(f"{files['summary.json']} has no num_known: it was written by an older version; "
                          f"retrain, or add \"num_known\": <number of known classes> to it")
    num_known = summary["num_known"]
    start = summary.get("prototypes_at_start") if config.get("unknown_k") else None
    return plot_run(history, run_path, num_known, start, load_test_outputs(run_path), config.get("seed", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="+", metavar="RUN_DIR", help="run directories (exp/<experiment>/<timestamp>)")
    args = parser.parse_args(argv)
    for run_dir in args.run_dir:
        try:
            written = make_report(run_dir)
        except ReportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        missing = "" if OUTPUTS_FILE in {p.name for p in Path(run_dir).iterdir()} else (
            f" ({OUTPUTS_FILE} absent: no confidence.png / tsne.png)")
        print(f"{run_dir}: {', '.join(written)}{missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
