"""Supervised cross-entropy on the labelled rows of both views (METHOD.md 4.1)."""
import torch
import torch.nn.functional as F


def supervised_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor, labels: torch.Tensor,
                    tau: float = 1.0) -> torch.Tensor:
    """Mean CE over the labelled rows of both views together.

    logits_*: [B, V]; labels: [B] with -1 marking unlabelled rows. Returns 0
    (with a graph) when the batch has no labelled row.
    """
    mask = labels >= 0
    logits = torch.cat([logits_weak[mask], logits_strong[mask]]) / tau
    if logits.shape[0] == 0:
        return logits_weak.sum() * 0.0
    return F.cross_entropy(logits, torch.cat([labels[mask], labels[mask]]))
