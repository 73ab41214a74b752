"""Open-world attribution metrics (METHOD.md section 7), pure numpy.

- all_acc: clustering accuracy over every test row (Hungarian matching of
  predicted to true labels on their contingency table);
- known_acc: plain accuracy on rows whose true label is known (< num_known);
- novel_acc: clustering accuracy on rows whose true label is novel, matched on
  those rows only;
- NMI and ARI overall and per subset; mean max-softmax confidence per subset.
A subset with no rows yields None ("missing"), never nan.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Best accuracy over one-to-one maps from predicted to true labels."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.size == 0:
        return None
    size = int(max(y_true.max(), y_pred.max())) + 1
    table = np.zeros((size, size), dtype=np.int64)
    np.add.at(table, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.size)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if y_true.size else None


def _subset_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float | None, float | None]:
    if y_true.size == 0:
        return None, None
    return (float(normalized_mutual_info_score(y_true, y_pred)), float(adjusted_rand_score(y_true, y_pred)))


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def attribution_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_known: int,
                        confidence: np.ndarray | None = None) -> dict:
    """All metrics of METHOD.md section 7 as a flat dict (None where undefined)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    known = y_true < num_known
    out = {
        "all_acc": cluster_accuracy(y_true, y_pred),
        "known_acc": accuracy(y_true[known], y_pred[known]),
        "novel_acc": cluster_accuracy(y_true[~known], y_pred[~known]),
        "num_test": int(y_true.size),
    }
    for name, rows in (("", slice(None)), ("_known", known), ("_novel", ~known)):
        out[f"nmi{name}"], out[f"ari{name}"] = _subset_scores(y_true[rows], y_pred[rows])
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        out.update(conf_all=_mean(confidence), conf_known=_mean(confidence[known]),
                   conf_novel=_mean(confidence[~known]))
    return out
