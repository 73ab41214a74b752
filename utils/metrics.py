"""Open-world attribution metrics (METHOD.md section 7), pure numpy.

- all_acc: Hungarian-matched clustering accuracy over every test row; known_acc:
  plain accuracy on known rows; novel_acc: clustering accuracy on novel rows,
  matched on those rows only; NMI, ARI and mean confidence per subset;
- discovery: the share of novel rows predicted as a novel prototype (index >=
  num_known), the share of known rows sent to one, the novel prototypes used.
  Novel ACC alone cannot show discovery: it matches novel classes onto whatever
  prototypes they land on, known ones included.
A subset with no rows yields None ("missing"), never nan.

The matching behind all_acc also names the clusters (``cluster_assignment``:
prototype -> test class, with its purity); ``aligned_confusion`` keeps known
classes on their own prototypes and matches the novel ones among the rest;
``per_class_accuracy`` splits known_acc and novel_acc by class.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def hungarian_match(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one map from predicted to true labels with the most rows on the diagonal.

    Returns (pred ids, true ids, table) where ``table[p, t]`` counts rows with
    prediction p and truth t (square, side = largest label + 1).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    size = int(max(y_true.max(), y_pred.max())) + 1 if y_true.size else 0
    table = np.zeros((size, size), dtype=np.int64)
    np.add.at(table, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return rows, cols, table


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Best accuracy over one-to-one maps from predicted to true labels."""
    if np.asarray(y_true).size == 0:
        return None
    rows, cols, table = hungarian_match(y_true, y_pred)
    return float(table[rows, cols].sum() / np.asarray(y_true).size)


def cluster_assignment(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    """all_acc's matching as plain data: per predicted prototype that the
    matching pairs with a class it actually holds, ``{"prototype", "label",
    "images"}`` (test images of that class on it) and ``"predicted"`` (all
    test images on it). Prototypes without such a pair are left out."""
    if np.asarray(y_true).size == 0:
        return []
    rows, cols, table = hungarian_match(y_true, y_pred)
    return [{"prototype": int(p), "label": int(t), "images": int(table[p, t]), "predicted": int(table[p].sum())}
            for p, t in zip(rows, cols) if table[p, t] > 0]


def aligned_confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, num_known: int,
                      num_prototypes: int) -> tuple[np.ndarray, list[int]]:
    """Confusion matrix [num_classes, num_prototypes] (rows: true labels) with
    known class c's column its own prototype c (so the known diagonal holds
    the plain hits of known_acc), then the novel prototypes in the order of a
    Hungarian matching of the novel classes to them (so with at least as many
    novel prototypes as novel classes the novel diagonal holds the matched
    counts), then the unmatched ones in index order. Returns (matrix,
    prototype of each column)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    table = np.zeros((num_classes, num_prototypes), dtype=np.int64)
    np.add.at(table, (y_true, y_pred), 1)
    rows, cols = linear_sum_assignment(table[num_known:, num_known:], maximize=True)
    order = list(range(num_known)) + [num_known + int(p) for _, p in sorted(zip(rows, cols))]
    taken = set(order)
    order += [p for p in range(num_prototypes) if p not in taken]
    return table[:, order], order


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_known: int, num_classes: int) -> list[dict]:
    """Per true label: ``images``, ``correct``, ``accuracy`` (None without
    images) and ``prototype`` (the one counted as correct). Known classes
    count plain hits (as known_acc); novel classes count hits under the
    matching of novel_acc (novel rows only), so the image-weighted means of
    the two blocks are known_acc and novel_acc."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    novel = y_true >= num_known
    target = {c: c for c in range(num_known)}
    if novel.any():
        rows, cols, table = hungarian_match(y_true[novel], y_pred[novel])
        target.update({int(t): int(p) for p, t in zip(rows, cols) if table[p, t] > 0})
    out = []
    for c in range(num_classes):
        on_class = y_true == c
        images = int(on_class.sum())
        correct = int((y_pred[on_class] == target.get(c, -1)).sum())
        out.append({"label": c, "known": c < num_known, "images": images, "correct": correct,
                    "accuracy": correct / images if images else None, "prototype": target.get(c)})
    return out


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if y_true.size else None


def _subset_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float | None, float | None]:
    if y_true.size == 0:
        return None, None
    return (float(normalized_mutual_info_score(y_true, y_pred)), float(adjusted_rand_score(y_true, y_pred)))


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def discovery_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_known: int,
                      num_prototypes: int | None = None) -> dict:
    """``discovery_rate``: share of novel-class rows whose prediction is a novel prototype;
    ``known_on_novel_rate``: the same share of known-class rows; ``novel_prototypes_used``:
    novel prototypes that hold at least one row; ``novel_prototypes``: how many there are
    (``num_prototypes`` - num_known, None when not given)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    known, on_novel = y_true < num_known, y_pred >= num_known
    return {"discovery_rate": _mean(on_novel[~known]), "known_on_novel_rate": _mean(on_novel[known]),
            "novel_prototypes_used": int(np.unique(y_pred[on_novel]).size),
            "novel_prototypes": None if num_prototypes is None else int(num_prototypes) - num_known}


def attribution_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_known: int,
                        confidence: np.ndarray | None = None, num_prototypes: int | None = None) -> dict:
    """All metrics of METHOD.md section 7 and ``discovery_metrics`` as a flat dict (None where
    undefined); ``num_prototypes``: the number of valid prototypes the predictions range over."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    known = y_true < num_known
    out = {
        "all_acc": cluster_accuracy(y_true, y_pred),
        "known_acc": accuracy(y_true[known], y_pred[known]),
        "novel_acc": cluster_accuracy(y_true[~known], y_pred[~known]),
        "num_test": int(y_true.size),
        **discovery_metrics(y_true, y_pred, num_known, num_prototypes),
    }
    for name, rows in (("", slice(None)), ("_known", known), ("_novel", ~known)):
        out[f"nmi{name}"], out[f"ari{name}"] = _subset_scores(y_true[rows], y_pred[rows])
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        out.update(conf_all=_mean(confidence), conf_known=_mean(confidence[known]),
                   conf_novel=_mean(confidence[~known]))
    return out
