"""One answer for a video from its frames' answers (the rule is chosen by measurement: docs/attribution.md).

Each frame f gives softmax probabilities p_f [V] over the valid prototypes; a
rule scores every prototype and the best score is the video's answer:
``mean`` mean_f p_f; ``vote`` the share of frames whose own answer (argmax
p_f) it is, ties broken by the mean probability; ``weighted`` the mean
weighted by each frame's confidence c_f = max_j p_f[j]. Whatever the rule, the
answer's ``probability`` is its mean probability over the frames,
``agreement`` the share of frames whose own answer it is, and ``similarity``
the frames' mean prototype similarity, which the abstain rule
(discovery/abstain.py) compares with the model's threshold as for an image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RULES = ("mean", "vote", "weighted")
DEFAULT_RULE = "weighted"


@dataclass(frozen=True)
class VideoAnswer:
    index: int            # the answering prototype
    probability: float    # its mean probability over the frames
    agreement: float      # share of frames whose own answer it is
    similarity: float     # mean prototype similarity of the frames
    scores: np.ndarray    # the rule's score of every prototype [V]


def rule_scores(prob: np.ndarray, rule: str = DEFAULT_RULE) -> np.ndarray:
    """The rule's score of every prototype [V] from the frames' probabilities ``prob`` [F, V], F >= 1."""
    prob = np.asarray(prob, dtype=np.float64)
    if rule == "mean":
        return prob.mean(axis=0)
    if rule == "vote":
        votes = np.bincount(prob.argmax(axis=1), minlength=prob.shape[1]) / len(prob)
        # the mean probability (< 1) over F + 1 breaks ties and never outranks one vote (1/F)
        return votes + prob.mean(axis=0) / (len(prob) + 1)
    if rule == "weighted":
        weight = prob.max(axis=1)
        return weight @ prob / weight.sum()
    raise ValueError(f"unknown video rule {rule!r}; choose one of {', '.join(RULES)}")


def pool_frames(prob: np.ndarray, rule: str = DEFAULT_RULE, similarity: np.ndarray | None = None) -> VideoAnswer:
    """The video's answer from its frames' probabilities ``prob`` [F, V] and prototype
    similarities [F] (None: ``similarity`` is NaN)."""
    prob = np.asarray(prob, dtype=np.float64)
    scores = rule_scores(prob, rule)
    index = int(scores.argmax())
    return VideoAnswer(index, float(prob[:, index].mean()), float((prob.argmax(axis=1) == index).mean()),
                       float(np.mean(similarity)) if similarity is not None else float("nan"), scores)
