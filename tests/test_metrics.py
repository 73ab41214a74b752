"""Evaluation metrics (METHOD.md section 7) on hand-worked cases.

NMI (arithmetic-mean normalisation) and ARI are checked against values derived
by hand from their formulas and against brute-force numpy implementations
written here (contingency-table NMI, pair-counting ARI over all row pairs).
"""
import itertools
import math
from collections import Counter

import numpy as np
import pytest

from utils.metrics import (accuracy, aligned_confusion, attribution_metrics, cluster_accuracy, cluster_assignment,
                           per_class_accuracy)

# ----------------------------------------------------------------- brute-force references

def brute_nmi(y_true, y_pred):
    """MI / ((H(true) + H(pred)) / 2), natural logs, from the contingency counts."""
    n = len(y_true)
    classes, clusters = sorted(set(y_true)), sorted(set(y_pred))
    count = {(c, k): sum(1 for t, p in zip(y_true, y_pred) if t == c and p == k) for c in classes for k in clusters}
    a = {c: sum(1 for t in y_true if t == c) for c in classes}
    b = {k: sum(1 for p in y_pred if p == k) for k in clusters}
    mi = sum(v / n * math.log(n * v / (a[c] * b[k])) for (c, k), v in count.items() if v)
    h_t = -sum(v / n * math.log(v / n) for v in a.values())
    h_p = -sum(v / n * math.log(v / n) for v in b.values())
    return mi / ((h_t + h_p) / 2)


def brute_ari(y_true, y_pred):
    """Pair counting over all unordered row pairs (Hubert & Arabie via the 2x2 pair table)."""
    n11 = n10 = n01 = n00 = 0
    for i, j in itertools.combinations(range(len(y_true)), 2):
        same_t, same_p = y_true[i] == y_true[j], y_pred[i] == y_pred[j]
        n11 += same_t and same_p
        n10 += same_t and not same_p
        n01 += same_p and not same_t
        n00 += not same_t and not same_p
    return 2 * (n11 * n00 - n01 * n10) / ((n11 + n01) * (n01 + n00) + (n11 + n10) * (n10 + n00))


def brute_cluster_accuracy(y_true, y_pred):
    """Best one-to-one map between predicted and true labels, by trying every injection
    of the smaller label set into the larger one."""
    counts = Counter(zip(y_true, y_pred))
    preds, trues = sorted(set(y_pred)), sorted(set(y_true))
    if len(preds) >= len(trues):
        best = max(sum(counts[(t, p)] for t, p in zip(trues, perm))
                   for perm in itertools.permutations(preds, len(trues)))
    else:
        best = max(sum(counts[(t, p)] for t, p in zip(perm, preds))
                   for perm in itertools.permutations(trues, len(preds)))
    return best / len(y_true)


# ----------------------------------------------------------------- cluster accuracy

def test_permuted_labels_give_full_accuracy():
    """A relabelling of the truth is a perfect clustering: 1.0 (plain accuracy would be 0)."""
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [2, 2, 0, 0, 1, 1, 1]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(1.0)
    assert accuracy(y_true, y_pred) == pytest.approx(0.0)


def test_greedy_is_wrong_optimal_matching_is_right():
    """Contingency (rows = predicted, cols = true):
          true0 true1
    pred0   3     2
    pred1   2     0
    Greedy (largest cell first) takes pred0->true0 (3), then pred1->true1 (0): 3/7.
    Many-to-one majority vote: pred0->true0 (3) + pred1->true0 (2) = 5/7 (not one-to-one).
    Optimal one-to-one: pred0->true1 (2) + pred1->true0 (2) = 4/7.
    """
    y_true = [0, 0, 0, 1, 1, 0, 0]
    y_pred = [0, 0, 0, 0, 0, 1, 1]
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 7)
    assert brute_cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 7)


def test_more_predicted_clusters_than_classes():
    """true [0,0,1,1,1,1], pred [0,0,1,1,2,2]: only one of clusters 1, 2 can map to class 1 -> 4/6."""
    assert cluster_accuracy([0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(4 / 6)
    # large predicted ids (prototype indices far above the class count)
    assert cluster_accuracy([0, 0, 1, 1, 1, 1], [7, 7, 3, 3, 9, 9]) == pytest.approx(4 / 6)


def test_fewer_predicted_clusters_than_classes():
    """true [0,1,2,2], pred all 5: one cluster maps to one class; best is class 2 -> 2/4."""
    assert cluster_accuracy([0, 1, 2, 2], [5, 5, 5, 5]) == pytest.approx(0.5)


def test_cluster_accuracy_random_against_brute_force():
    """Random small labelings: Hungarian result equals the exhaustive search."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        y_true = list(rng.integers(0, 3, size=12))
        y_pred = list(rng.integers(0, 4, size=12))
        assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_cluster_accuracy(y_true, y_pred))


def test_empty_inputs_are_missing():
    assert cluster_accuracy([], []) is None
    assert accuracy([], []) is None


# ----------------------------------------------------------------- NMI / ARI by hand

def test_nmi_ari_hand_worked_2x2_with_zero_ari():
    """true [0,0,1,1], pred [0,0,0,1].  Contingency (true x pred) [[2,0],[1,1]], n = 4.
    MI = 2/4 ln(4*2/(2*3)) + 1/4 ln(4*1/(2*3)) + 1/4 ln(4*1/(2*1)) = 1.5 ln2 - 0.75 ln3
    H(true) = ln 2; H(pred) = -(3/4 ln 3/4 + 1/4 ln 1/4) = 2 ln2 - 0.75 ln3
    NMI = MI / ((H_t + H_p)/2) = (3 ln2 - 1.5 ln3) / (3 ln2 - 0.75 ln3) = 0.34371
    ARI: sum C(n_ij,2) = 1; sum C(a_i,2) = 1+1 = 2; sum C(b_j,2) = 3+0 = 3; C(4,2) = 6;
    expected index = 2*3/6 = 1; max = (2+3)/2 = 2.5; ARI = (1-1)/(2.5-1) = 0.
    """
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 0, 1]
    ln2, ln3 = math.log(2), math.log(3)
    nmi = (3 * ln2 - 1.5 * ln3) / (3 * ln2 - 0.75 * ln3)
    assert nmi == pytest.approx(0.343712, abs=1e-6)
    assert brute_nmi(y_true, y_pred) == pytest.approx(nmi, rel=1e-12)
    assert brute_ari(y_true, y_pred) == pytest.approx(0.0, abs=1e-12)
    out = attribution_metrics(np.array(y_true), np.array(y_pred), num_known=2)
    assert out["nmi"] == pytest.approx(nmi, rel=1e-9)
    assert out["ari"] == pytest.approx(0.0, abs=1e-12)


def test_nmi_ari_hand_worked_2x2_nonzero():
    """true [0,0,0,1,1,1], pred [0,0,1,1,1,1].  Contingency [[2,1],[0,3]], a = (3,3), b = (2,4), n = 6.
    MI = 2/6 ln(12/6) + 1/6 ln(6/12) + 3/6 ln(18/12) = 1/2 ln3 - 1/3 ln2
    H_t = ln2; H_p = ln3 - 2/3 ln2
    NMI = (ln3 - 2/3 ln2) / (ln3 + 1/3 ln2) = 0.478707
    ARI: sum C(n_ij,2) = 1+0+3 = 4; sum C(a,2) = 6; sum C(b,2) = 1+6 = 7; C(6,2) = 15;
    expected = 6*7/15 = 2.8; max = 6.5; ARI = 1.2/3.7 = 12/37.
    """
    y_true, y_pred = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]
    ln2, ln3 = math.log(2), math.log(3)
    nmi = (ln3 - 2 / 3 * ln2) / (ln3 + 1 / 3 * ln2)
    assert brute_nmi(y_true, y_pred) == pytest.approx(nmi, rel=1e-12)
    assert brute_ari(y_true, y_pred) == pytest.approx(12 / 37, rel=1e-12)
    out = attribution_metrics(np.array(y_true), np.array(y_pred), num_known=5)
    assert out["nmi"] == pytest.approx(nmi, rel=1e-9)
    assert out["ari"] == pytest.approx(12 / 37, rel=1e-9)


# ----------------------------------------------------------------- attribution_metrics

def test_known_plain_novel_matched_on_novel_rows_only():
    """num_known = 1.  Rows: true 0 (known) predicted 1 three times; true 1 (novel) predicted 1 twice.
    known_acc: plain accuracy on known rows = 0/3 = 0 (no matching allowed).
    novel_acc: matching on novel rows only: cluster 1 -> class 1 -> 2/2 = 1.0
      (a matching computed over all rows would send cluster 1 to class 0 and give 0).
    all_acc: table pred1 = [3, 2] -> best 3/5.
    """
    y_true = np.array([0, 0, 0, 1, 1])
    y_pred = np.array([1, 1, 1, 1, 1])
    out = attribution_metrics(y_true, y_pred, num_known=1)
    assert out["known_acc"] == pytest.approx(0.0)
    assert out["novel_acc"] == pytest.approx(1.0)
    assert out["all_acc"] == pytest.approx(3 / 5)
    assert out["num_test"] == 5


def test_known_acc_is_not_matched():
    """Known rows with a consistent relabelling: cluster accuracy would be 1, plain accuracy is 0.5."""
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([1, 1, 1, 1, 2, 2])  # class 0 rows predicted as 1
    out = attribution_metrics(y_true, y_pred, num_known=2)
    assert out["known_acc"] == pytest.approx(2 / 4)
    assert out["novel_acc"] == pytest.approx(1.0)


def test_subset_scores_and_confidence_against_brute_force():
    """nmi/ari overall and per subset, and mean confidence per subset."""
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, size=40)
    y_pred = np.where(rng.random(40) < 0.7, y_true, rng.integers(0, 8, size=40))
    conf = rng.random(40)
    out = attribution_metrics(y_true, y_pred, num_known=2, confidence=conf)
    known = y_true < 2
    for suffix, rows in (("", np.ones(40, bool)), ("_known", known), ("_novel", ~known)):
        assert out[f"nmi{suffix}"] == pytest.approx(brute_nmi(list(y_true[rows]), list(y_pred[rows])), rel=1e-9)
        assert out[f"ari{suffix}"] == pytest.approx(brute_ari(list(y_true[rows]), list(y_pred[rows])), rel=1e-9)
    assert out["conf_all"] == pytest.approx(sum(conf) / 40)
    assert out["conf_known"] == pytest.approx(sum(c for c, k in zip(conf, known) if k) / known.sum())
    assert out["conf_novel"] == pytest.approx(sum(c for c, k in zip(conf, known) if not k) / (~known).sum())
    assert out["known_acc"] == pytest.approx(np.mean(y_true[known] == y_pred[known]))
    assert out["novel_acc"] == pytest.approx(brute_cluster_accuracy(list(y_true[~known]), list(y_pred[~known])))


def test_missing_subsets_are_none():
    """No known rows -> known_acc, nmi_known, ari_known, conf_known are None (not nan);
    no novel rows -> the novel ones are None."""
    only_novel = attribution_metrics(np.array([3, 3, 4]), np.array([5, 5, 6]), num_known=3,
                                     confidence=np.array([0.5, 0.7, 0.9]))
    assert only_novel["known_acc"] is None
    assert only_novel["nmi_known"] is None and only_novel["ari_known"] is None
    assert only_novel["conf_known"] is None
    assert only_novel["novel_acc"] == pytest.approx(1.0)
    assert only_novel["conf_novel"] == pytest.approx(0.7)
    assert only_novel["conf_all"] == pytest.approx(0.7)

    only_known = attribution_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), num_known=3,
                                     confidence=np.array([0.2, 0.4, 0.9]))
    assert only_known["novel_acc"] is None
    assert only_known["nmi_novel"] is None and only_known["ari_novel"] is None
    assert only_known["conf_novel"] is None
    assert only_known["known_acc"] == pytest.approx(2 / 3)
    assert only_known["conf_known"] == pytest.approx(0.5)


def test_no_confidence_no_confidence_keys():
    """Without confidences the metrics still compute (and there is nothing to average)."""
    out = attribution_metrics(np.array([0, 1]), np.array([0, 1]), num_known=1)
    assert out["all_acc"] == pytest.approx(1.0)
    assert out.get("conf_all") is None


# ----------------------------------------------------------------- discovery
def test_discovery_zero_when_every_novel_image_lands_on_a_known_prototype():
    """num_known = 2, 4 prototypes. Novel rows (true 2, 3) all predicted 0 or 1: nothing discovered,
    although the matching still gives them a Novel ACC of 4/4 (two classes on two known prototypes)."""
    from utils.tables import discovery_warning, format_table

    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([0, 0, 1, 3, 0, 0, 1, 1])
    out = attribution_metrics(y_true, y_pred, num_known=2, num_prototypes=4)
    assert out["discovery_rate"] == 0.0
    assert out["known_on_novel_rate"] == pytest.approx(1 / 4)  # the known row on prototype 3
    assert out["novel_prototypes_used"] == 1 and out["novel_prototypes"] == 2
    assert out["novel_acc"] == pytest.approx(1.0), "Novel ACC cannot tell: the reason for the warning"
    warning = discovery_warning(out)
    assert warning.startswith("warning: no novel test image") and "\n" not in warning
    table = format_table(out)
    assert warning in table and "0.0 % of novel test images on a novel prototype" in table
    assert "25.0 % of known ones; 1 of 2 novel prototypes" in table


def test_discovery_full_on_a_perfect_run_and_hand_counted_shares():
    from utils.tables import discovery_warning

    perfect = attribution_metrics(np.array([0, 1, 2, 3, 3]), np.array([0, 1, 2, 3, 3]), num_known=2,
                                  num_prototypes=4)
    assert perfect["discovery_rate"] == 1.0 and perfect["known_on_novel_rate"] == 0.0
    assert perfect["novel_prototypes_used"] == 2 and discovery_warning(perfect) is None
    # 4 of 6 novel rows on novel prototypes 4 and 6 (6 holds a known row too); novel prototypes 2..6
    y_true = np.array([0, 1, 1, 2, 2, 3, 3, 3, 4])
    y_pred = np.array([6, 1, 1, 4, 0, 6, 1, 6, 4])
    out = attribution_metrics(y_true, y_pred, num_known=2, num_prototypes=7)
    assert out["discovery_rate"] == pytest.approx(4 / 6)
    assert out["known_on_novel_rate"] == pytest.approx(1 / 3)
    assert out["novel_prototypes_used"] == 2 and out["novel_prototypes"] == 5


def test_discovery_is_missing_without_novel_images():
    from utils.tables import discovery_line, discovery_warning

    out = attribution_metrics(np.array([0, 1]), np.array([0, 2]), num_known=2)
    assert out["discovery_rate"] is None and out["known_on_novel_rate"] == 0.5
    assert out["novel_prototypes"] is None
    assert discovery_line(out) is None and discovery_warning(out) is None


# ----------------------------------------------------------------- naming and per-class views
def test_cluster_assignment_by_hand():
    # prototype 5 holds 3 of class 2 and 1 of class 3; prototype 7 holds 2 of class 3; prototype 0 one of class 0.
    y_true = [2, 2, 2, 3, 3, 3, 0]
    y_pred = [5, 5, 5, 5, 7, 7, 0]
    out = cluster_assignment(y_true, y_pred)
    assert sorted(out, key=lambda a: a["prototype"]) == [
        {"prototype": 0, "label": 0, "images": 1, "predicted": 1},
        {"prototype": 5, "label": 2, "images": 3, "predicted": 4},
        {"prototype": 7, "label": 3, "images": 2, "predicted": 2},
    ]
    assert sum(a["images"] for a in out) / len(y_true) == pytest.approx(cluster_accuracy(y_true, y_pred))
    assert cluster_assignment([], []) == []


def test_aligned_confusion_keeps_known_classes_on_their_own_prototypes():
    # known 0, 1; novel 2, 3; prototypes 0..4. Known class 1 lands mostly on novel prototype 2, which an
    # all-class matching would pair with it; its column stays prototype 1, and prototype 2 goes last
    y_true = [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    y_pred = [0, 0, 2, 2, 1, 3, 3, 4, 4, 2]
    matrix, order = aligned_confusion(y_true, y_pred, num_classes=4, num_known=2, num_prototypes=5)
    assert order == [0, 1, 3, 4, 2]
    assert matrix.tolist() == [[2, 0, 0, 0, 0], [0, 1, 0, 0, 2], [0, 0, 2, 0, 0], [0, 0, 0, 2, 1]]
    known = np.asarray(y_true) < 2
    assert np.trace(matrix[:2, :2]) / known.sum() == pytest.approx(accuracy(np.asarray(y_true)[known],
                                                                           np.asarray(y_pred)[known]))


def test_per_class_accuracy_splits_known_and_novel_acc():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 9, size=300)
    y_pred = rng.integers(0, 12, size=300)
    y_pred[:120] = y_true[:120]
    rows = per_class_accuracy(y_true, y_pred, num_known=4, num_classes=10)
    metrics = attribution_metrics(y_true, y_pred, num_known=4)
    known = [r for r in rows if r["known"]]
    novel = [r for r in rows if not r["known"]]
    assert sum(r["correct"] for r in known) / sum(r["images"] for r in known) == pytest.approx(metrics["known_acc"])
    assert sum(r["correct"] for r in novel) / sum(r["images"] for r in novel) == pytest.approx(metrics["novel_acc"])
    assert rows[9] == {"label": 9, "known": False, "images": 0, "correct": 0, "accuracy": None, "prototype": None}
    hand = per_class_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 5, 5, 1], num_known=2, num_classes=3)
    assert [(r["correct"], r["prototype"]) for r in hand] == [(1, 0), (1, 1), (2, 5)]
