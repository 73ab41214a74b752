"""Supervised cross-entropy on the labelled rows of both views (METHOD.md 4.1)."""
import torch
import torch.nn.functional as F


def supervised_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor, labels: torch.Tensor,
                    tau: float = 1.0) -> torch.Tensor:
    """Mean CE over the labelled rows of both views together.

    logits_*: [B, V]; labels: [B] with -1 marking unlabelled rows. Returns 0
    (with a graph) when the batch has no labelled row.

    Written without boolean indexing, whose data-dependent shape would cost a
    host sync per step on CUDA.
    """
    targets = torch.cat([labels, labels])
    total = F.cross_entropy(torch.cat([logits_weak, logits_strong]) / tau, targets, ignore_index=-1, reduction="sum")
    return total / (targets >= 0).sum().clamp_min(1)
