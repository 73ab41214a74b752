"""The prediction CSV: one row per image (path, predicted, confidence,
is_real, top3, error; test.py adds the true class) and its summary."""
from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

COLUMNS = ("path", "predicted", "confidence", "is_real", "top3", "error")
TEST_COLUMNS = ("path", "true") + COLUMNS[1:]


def format_top(names: list[str], index: np.ndarray, prob: np.ndarray) -> str:
    return "; ".join(f"{names[j]}:{p:.4f}" for j, p in zip(index.tolist(), prob.tolist()))


def prediction_rows(paths: list[str], out: dict, names: list[str], real: set[int],
                    true_names: list[str] | None = None) -> list[dict]:
    """CSV rows from ``trainer.evaluation.predict``'s output over ``paths``
    (``true_names``: the true class of every path, for test.py)."""
    rows = [{"path": p, "predicted": "", "confidence": "", "is_real": "", "top3": "", "error": ""} for p in paths]
    for position, index in enumerate(out["index"].tolist()):
        pred = int(out["pred"][position])
        rows[index].update(predicted=names[pred], confidence=f"{out['confidence'][position]:.4f}",
                           is_real=str(pred in real).lower(),
                           top3=format_top(names, out["top_index"][position], out["top_prob"][position]))
    for index, reason in out["errors"].items():
        rows[index]["error"] = reason
    if true_names is not None:
        rows = [{"path": r["path"], "true": t, **{k: r[k] for k in COLUMNS[1:]}} for r, t in zip(rows, true_names)]
    return rows


def write_csv(rows: list[dict], path: str | os.PathLike | None, columns=COLUMNS) -> None:
    """Rows to ``path`` (stdout when None)."""
    if path is None:
        _write_rows(rows, sys.stdout, columns)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        _write_rows(rows, handle, columns)


def _write_rows(rows, handle, columns) -> None:
    writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def summary(rows: list[dict]) -> str:
    """Images per predicted class (most first) and the unreadable ones."""
    counts = Counter(r["predicted"] for r in rows if not r["error"])
    errors = sum(1 for r in rows if r["error"])
    width = max([len(name) for name in counts] + [10])
    lines = [f"{len(rows)} images: {len(rows) - errors} attributed, {errors} unreadable"]
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in counts.most_common()]
    return "\n".join(lines)
