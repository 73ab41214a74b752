"""The prediction CSV: one row per image (path, predicted, nearest,
confidence, similarity, is_real, top3, error; test.py adds the true class)
and its summary. ``predicted`` is ``unknown`` where the abstain rule
(discovery/abstain.py) rejects the image; ``nearest`` always names the best class.
predict.py's CSV adds VIDEO_COLUMNS (kind, frame, time, agreement,
frames_used, frames_no_face, frames_unreadable, note): one row per video
(``video_rows``: the answer pooled over its frames by inference/video_pooling.py,
the same abstain rule on the pooled values) and, optionally, one per frame.

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
from inference.video_pooling import DEFAULT_RULE, pool_frames
from discovery.abstain import prototype_similarity, unknown_mask
from utils.disk import write_atomic
from utils.text import csv_cell

COLUMNS = ("path", "predicted", "nearest", "confidence", "similarity", "is_real", "top3", "error")
TEST_COLUMNS = ("path", "true") + COLUMNS[1:]
VIDEO_COLUMNS = ("kind", "frame", "time", "agreement", "frames_used", "frames_no_face", "frames_unreadable", "note")
PREDICT_COLUMNS = COLUMNS + VIDEO_COLUMNS
UNKNOWN = "unknown"


TOP = 3  # alternatives listed in top3


def format_top(names: list[str], index: np.ndarray, prob: np.ndarray) -> str:
    return "; ".join(f"{names[j]}:{p:.4f}" for j, p in zip(index.tolist(), prob.tolist()))


def mark_unknown(out: dict, prototypes: np.ndarray, calibration: dict | None, min_confidence: float = 0.0) -> None:
    """Add ``similarity`` and ``unknown`` (discovery/abstain.py) to ``predict``'s output ``out``,
    which must hold ``features``."""
    out["similarity"] = prototype_similarity(out["features"], prototypes)
    out["unknown"] = unknown_mask(out["similarity"], out["confidence"], calibration, min_confidence)


def prediction_rows(paths: list[str], out: dict, names: list[str], real: set[int],
                    true_names: list[str] | None = None) -> list[dict]:
    """CSV rows from ``utils.evaluation.predict``'s output over ``paths``, once
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


def image_rows(rows: list[dict]) -> list[dict]:
    """``prediction_rows``' rows as predict.py writes them: kind "image", the video columns empty."""
    return [dict.fromkeys(PREDICT_COLUMNS, "") | row | {"kind": "image"} for row in rows]


def video_rows(result, names: list[str], real: set[int], calibration: dict | None, min_confidence: float = 0.0,
               rule: str = DEFAULT_RULE, per_frame: bool = False) -> list[dict]:
    """The row of one video (an ``inference.video_attribution.VideoResult``) and, with ``per_frame``,
    one row per sampled frame after it: the answer pooled by ``rule``, ``unknown`` when the pooled
    similarity or probability fails the abstain rule as an image's would."""
    row = dict.fromkeys(PREDICT_COLUMNS, "") | {
        "path": result.path, "kind": "video", "frames_used": str(len(result.frames)),
        "frames_no_face": str(result.count("no_face")), "frames_unreadable": str(result.count("unreadable")),
        "note": "; ".join(result.notes), "error": result.error or ("" if result.frames else _no_frame(result))}
    if result.frames:
        answer = pool_frames(result.prob, rule, result.similarity)
        abstained = bool(unknown_mask([answer.similarity], [answer.probability], calibration, min_confidence)[0])
        top = np.argsort(-answer.scores, kind="stable")[:TOP]
        row.update(predicted=UNKNOWN if abstained else names[answer.index], nearest=names[answer.index],
                   confidence=f"{answer.probability:.4f}", similarity=f"{answer.similarity:.4f}",
                   is_real=str(answer.index in real and not abstained).lower(), agreement=f"{answer.agreement:.4f}",
                   top3=format_top(names, top, result.prob[:, top].mean(axis=0)))
    return [row] + (frame_rows(result, names, real, calibration, min_confidence) if per_frame else [])


def frame_rows(result, names: list[str], real: set[int], calibration: dict | None,
               min_confidence: float = 0.0) -> list[dict]:
    """One row per sampled frame of a video, in frame order: a used frame as an image's row, a
    skipped one with its reason in ``error``."""
    rows = []
    if result.frames:
        prob = result.prob
        top_index = np.argsort(-prob, axis=1, kind="stable")[:, :TOP]
        out = {"index": np.arange(len(prob)), "pred": top_index[:, 0], "confidence": prob.max(axis=1),
               "similarity": result.similarity, "top_index": top_index,
               "top_prob": np.take_along_axis(prob, top_index, axis=1), "errors": {}}
        out["unknown"] = unknown_mask(out["similarity"], out["confidence"], calibration, min_confidence)
        rows = prediction_rows([result.path] * len(prob), out, names, real)
        rows = [dict.fromkeys(PREDICT_COLUMNS, "") | r | {"frame": frame, "time": time}
                for r, frame, time in zip(rows, result.frames, result.times)]
    rows += [dict.fromkeys(PREDICT_COLUMNS, "") | {"path": result.path, "frame": frame, "time": time, "error": reason}
             for frame, time, _, reason in result.skipped]
    for r in rows:
        r.update(kind="frame", time=f"{r['time']:.3f}", frame=str(r["frame"]))
    return sorted(rows, key=lambda r: int(r["frame"]))


def _no_frame(result) -> str:
    """Why a video that opened gave no usable frame."""
    no_face, unreadable = result.count("no_face"), result.count("unreadable")
    sampled = no_face + unreadable
    if no_face == sampled:
        return f"no face found in any of the {sampled} sampled frames"
    if unreadable == sampled:
        return f"none of the {sampled} sampled frames decodes"
    return f"no usable frame: of the {sampled} sampled frames {no_face} show no face and {unreadable} do not decode"


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
    """Images per predicted class (most first), the unknown and the unreadable ones; then the same
    for videos, with their frames used and skipped (frame rows are not counted)."""
    images = [r for r in rows if r.get("kind", "image") == "image"]
    videos = [r for r in rows if r.get("kind") == "video"]
    parts = [_counts(images, "images", "unreadable")] if images or not videos else []
    if videos:
        frames = {c: sum(int(r[c] or 0) for r in videos)
                  for c in ("frames_used", "frames_no_face", "frames_unreadable")}
        parts.append(_counts(videos, "videos", "without an answer")
                     + f"\n  frames: {frames['frames_used']} used, {frames['frames_no_face']} without a face, "
                       f"{frames['frames_unreadable']} unreadable")
    return "\n".join(parts)


def _counts(rows: list[dict], what: str, failed: str) -> str:
    counts = Counter(r["predicted"] for r in rows if not r["error"])
    errors = sum(1 for r in rows if r["error"])
    width = max([len(name) for name in counts] + [10])
    lines = [f"{len(rows)} {what}: {len(rows) - errors - counts[UNKNOWN]} attributed, {counts[UNKNOWN]} "
             f"{UNKNOWN}, {errors} {failed}"]
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in counts.most_common()]
    return "\n".join(lines)
