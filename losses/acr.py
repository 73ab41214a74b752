"""Asymmetric confidence reinforcement, ACR (METHOD.md 4.4).

Pseudo-labels on unlabelled rows, with one threshold for rows predicted as a
known class (``gamma``) and another, adaptive one for rows predicted novel
(``gamma_novel``), recalibrated every epoch from the confidence gap between
the two groups.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def acr_loss(logits_weak: torch.Tensor, unlabelled: torch.Tensor, num_known: int,
             gamma: float, gamma_novel: float, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CE(l_w[kept], argmax) over confident unlabelled rows; returns (loss, number kept).

    p = softmax(l_w / tau); a row is kept when it is unlabelled and either its
    argmax is known with max p >= gamma, or novel with max p >= gamma_novel.
    The loss is 0 (with a graph) when no row is kept.
    """
    with torch.no_grad():
        confidence, pseudo = logits_weak.float().div(tau).softmax(dim=1).max(dim=1)
        threshold = torch.where(pseudo < num_known, torch.full_like(confidence, gamma),
                                torch.full_like(confidence, gamma_novel))
        kept = unlabelled & (confidence >= threshold)
    n_kept = kept.sum()
    per_row = F.cross_entropy(logits_weak.float(), pseudo, reduction="none")
    return (per_row * kept).sum() / n_kept.clamp_min(1), n_kept


class NovelThreshold:
    """The adaptive novel-class threshold and its per-epoch statistics.

    During an epoch, over rows whose weak and strong argmax agree, it sums the
    weak-view max-softmax of rows predicted known and of rows predicted novel
    (sums and counts, so processes can add theirs). At the epoch's end:
    gamma_novel = gamma * clamp(m_novel / m_known, 0.1, ratio_max), or unchanged
    when either group is empty. The paper's ratio_max is 10, and a value of
    gamma_novel above 1 then admits no novel pseudo-label (``update`` reports
    it); ratio_max = 1 keeps the novel threshold at most the known one.
    """

    RATIO_MIN = 0.1

    def __init__(self, gamma: float = 0.9, gamma_novel: float = 0.0, asymmetric: bool = True,
                 ratio_max: float = 10.0):
        self.gamma, self.asymmetric, self.ratio_max = gamma, asymmetric, ratio_max
        self.gamma_novel = gamma_novel if asymmetric else gamma
        self.stats = torch.zeros(4, dtype=torch.float64)  # known sum, known count, novel sum, novel count

    def accumulate(self, logits_weak: torch.Tensor, logits_strong: torch.Tensor, num_known: int,
                   tau: float = 1.0) -> None:
        """Add a batch's statistics, confidences at temperature ``tau`` as ``acr_loss`` takes them
        (stays on the logits' device; no host sync)."""
        with torch.no_grad():
            confidence, pred = logits_weak.float().div(tau).softmax(dim=1).max(dim=1)
            agree = pred == logits_strong.argmax(dim=1)
            is_known = (pred < num_known) & agree
            is_novel = (pred >= num_known) & agree
            batch = torch.stack([(confidence * is_known).sum(), is_known.sum(),
                                 (confidence * is_novel).sum(), is_novel.sum()]).double()
            self.stats = self.stats.to(batch.device) + batch

    def update(self, stats: torch.Tensor | None = None) -> dict:
        """Recalibrate from ``stats`` (the epoch's sums, already reduced over
        processes; default: this process's), reset them, return a log dict."""
        known_sum, known_n, novel_sum, novel_n = (self.stats if stats is None else stats).tolist()
        self.stats = torch.zeros_like(self.stats)
        m_known = known_sum / known_n if known_n else None
        m_novel = novel_sum / novel_n if novel_n else None
        if self.asymmetric and m_known and m_novel is not None:
            ratio = min(max(m_novel / m_known, self.RATIO_MIN), self.ratio_max)
            self.gamma_novel = self.gamma * ratio
        return {"gamma_novel": self.gamma_novel, "conf_known_train": m_known, "conf_novel_train": m_novel,
                "gamma_novel_above_one": self.gamma_novel > 1.0}

    def state_dict(self) -> dict:
        return {"gamma": self.gamma, "gamma_novel": self.gamma_novel, "asymmetric": self.asymmetric,
                "stats": self.stats.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.gamma, self.gamma_novel = state["gamma"], state["gamma_novel"]
        self.asymmetric, self.stats = state["asymmetric"], state["stats"].clone()
