"""The prediction CSV: one row per image (path, predicted, nearest,
confidence, similarity, is_real, top3, error; test.py adds the true class)
and its summary. ``predicted`` is ``unknown`` where the abstain rule
(utils/abstain.py) rejects the image; ``nearest`` always names the best class.

CSVs are UTF-8; a file name's bytes that are not UTF-8 appear as ``\\xHH`` and
a cell starting with = + - @ gets a leading ' (utils/text.py). Output paths
are checked (``check_output``) before any image is read, and a CSV file is
written whole or not at all (a temporary file renamed over it).
"""
from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from dataset.image_io import special_kind
from utils.abstain import prototype_similarity, unknown_mask
from utils.disk import write_atomic
from utils.text import csv_cell

COLUMNS = ("path", "predicted", "nearest", "confidence", "similarity", "is_real", "top3", "error")
TEST_COLUMNS = ("path", "true") + COLUMNS[1:]
UNKNOWN = "unknown"


def format_top(names: list[str], index: np.ndarray, prob: np.ndarray) -> str:
    return "; ".join(f"{names[j]}:{p:.4f}" for j, p in zip(index.tolist(), prob.tolist()))


def mark_unknown(out: dict, prototypes: np.ndarray, calibration: dict | None, min_confidence: float = 0.0) -> None:
    """Add ``similarity`` and ``unknown`` (utils/abstain.py) to ``predict``'s output ``out``,
    which must hold ``features``."""
    out["similarity"] = prototype_similarity(out["features"], prototypes)
    out["unknown"] = unknown_mask(out["similarity"], out["confidence"], calibration, min_confidence)


def prediction_rows(paths: list[str], out: dict, names: list[str], real: set[int],
                    true_names: list[str] | None = None) -> list[dict]:
    """CSV rows from ``trainer.evaluation.predict``'s output over ``paths``, once
    ``mark_unknown`` has run on it (``true_names``: the true class of every
    path, for test.py)."""
    rows = [dict.fromkeys(COLUMNS, "") | {"path": p} for p in paths]
    for position, index in enumerate(out["index"].tolist()):
        pred = int(out["pred"][position])
        abstained = bool(out["unknown"][position])
        rows[index].update(predicted=UNKNOWN if abstained else names[pred], nearest=names[pred],
                           confidence=f"{out['confidence'][position]:.4f}",
                           similarity=f"{out['similarity'][position]:.4f}",
                           is_real=str(pred in real and not abstained).lower(),
                           top3=format_top(names, out["top_index"][position], out["top_prob"][position]))
    for index, reason in out["errors"].items():
        rows[index]["error"] = reason
    if true_names is not None:
        rows = [{"path": r["path"], "true": t, **{k: r[k] for k in COLUMNS[1:]}} for r, t in zip(rows, true_names)]
    return rows


class OutputError(ValueError):
    """An output path that cannot be written; the message names it and why."""


def check_output(path: str | os.PathLike, what: str = "--out") -> Path:
    """Fail now, before any work, when ``path`` cannot be written: a directory, something else that is
    not a regular file (a device, a named pipe; also behind a symbolic link, which is written
    through), or a folder where no file can be created (tried with a temporary file). Creates the
    missing parent folders."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; name a file, e.g. {path / 'predictions.csv'}")
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        link = f" links to {target}, which" if path.is_symlink() else ""
        raise OutputError(f"{what} {path}{link} is {special_kind(target.stat().st_mode)}, not a regular file; "
                          f"name a regular file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".check"):
            pass
    except OSError as err:
        raise OutputError(f"{what} {path} cannot be written ({err.strerror or err}); choose a writable "
                          f"place") from None
    return path


def write_csv(rows: list[dict], path: str | os.PathLike | None, columns=COLUMNS) -> None:
    """Rows to ``path`` (stdout when None), UTF-8, each cell through ``csv_cell``."""
    if path is None:
        write_rows(sys.stdout, [list(columns)] + [[r[c] for c in columns] for r in rows])
        return
    write_table(path, [list(columns)] + [[r[c] for c in columns] for r in rows])


def write_table(path: str | os.PathLike, table: list[list]) -> None:
    """A CSV file of ``table`` (header first), written whole or not at all (``utils.disk.write_atomic``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    write_rows(text, table)
    write_atomic(path, text.getvalue())


def write_rows(handle, table: list[list]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerows([csv_cell(cell) for cell in row] for row in table)


def summary(rows: list[dict]) -> str:
    """Images per predicted class (most first), the unknown and the unreadable ones."""
    counts = Counter(r["predicted"] for r in rows if not r["error"])
    errors = sum(1 for r in rows if r["error"])
    width = max([len(name) for name in counts] + [10])
    lines = [f"{len(rows)} images: {len(rows) - errors - counts[UNKNOWN]} attributed, {counts[UNKNOWN]} "
             f"{UNKNOWN}, {errors} unreadable"]
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in counts.most_common()]
    return "\n".join(lines)
