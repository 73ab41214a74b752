"""Prior regularisation: keep the mean prediction close to uniform (METHOD.md 4.2)."""
import math

import torch


def prior_regularisation(logits_weak: torch.Tensor, logits_strong: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """(log V - H(p_bar)) / 2 = KL(p_bar || uniform) / number of views.

    p_bar is the mean of softmax(l / tau) over all rows of both views; V is the
    number of valid prototypes (the logits' width).
    """
    probs = torch.cat([logits_weak, logits_strong]).float().div(tau).softmax(dim=1)
    p_bar = probs.mean(dim=0)
    entropy = -(p_bar * torch.log(p_bar.clamp_min(1e-12))).sum()
    return (math.log(p_bar.shape[0]) - entropy) / 2
