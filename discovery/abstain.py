"""The abstain rule: when an image is none of the model's classes, say ``unknown``.

An image's score is its *prototype similarity*: the largest cosine between its
feature z (the BNNeck output) and the valid prototype rows W_j of the
classifier, max_j cos(z, W_j). Softmax confidence cannot abstain: the logits
z W^T grow with |z|, so an image far from every class can still give one class
0.93. The threshold is calibrated on the training images, once, at the end of
training: the ``1 - ACCEPT`` quantile of their own scores, so that ACCEPT of
them (95 %) are accepted. An image scoring below it, or (optionally) whose
softmax confidence is below a floor, is ``unknown``. Pure numpy; the numbers
and their measurement are in docs/attribution.md.
"""
from __future__ import annotations

import numpy as np

ACCEPT = 0.95  # share of the training images the calibrated threshold accepts
RULE = "max_prototype_cosine"


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float64; a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def prototype_similarity(features: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """max_j cos(features_i, prototypes_j) per row [N]."""
    return (_unit_rows(features) @ _unit_rows(prototypes).T).max(axis=1)


def knn_similarity(features: np.ndarray, reference: np.ndarray, k: int, rows: int = 256) -> np.ndarray:
    """Per row of ``features``, the mean cosine to its ``k`` most similar rows of ``reference`` [N]:
    a score blind to the prototypes, which the held-out benchmark sets beside the rule's."""
    features, reference = _unit_rows(features), _unit_rows(reference)
    return np.concatenate([np.partition(features[start:start + rows] @ reference.T, -k, axis=1)[:, -k:].mean(axis=1)
                           for start in range(0, len(features), rows)])


def calibrate(features: np.ndarray, prototypes: np.ndarray, accept: float = ACCEPT) -> dict:
    """The abstain threshold from the training images' ``features`` [N, D] and the valid
    ``prototypes`` [V, D]: a plain dict (rule, threshold, accept, images) that checkpoints
    and exports carry."""
    if not 0 < accept <= 1:
        raise ValueError(f"accept={accept} must be in (0, 1]")
    scores = prototype_similarity(features, prototypes)
    if not scores.size:
        raise ValueError("no training features to calibrate the abstain threshold on")
    return {"rule": RULE, "threshold": float(np.quantile(scores, 1 - accept)), "accept": accept,
            "images": int(scores.size)}


def unknown_mask(similarity: np.ndarray, confidence: np.ndarray, calibration: dict | None,
                 min_confidence: float = 0.0) -> np.ndarray:
    """True where an image is ``unknown``: similarity below the calibrated threshold
    (when there is one) or softmax confidence below ``min_confidence``."""
    similarity, confidence = np.asarray(similarity), np.asarray(confidence)
    mask = confidence < min_confidence
    if calibration is not None:
        mask |= similarity < calibration["threshold"]
    return mask
