"""Confidence-aware consistency regularisation, CCR (METHOD.md 4.3)."""
import torch


def ccr_weights(confidence: torch.Tensor, progress: float) -> torch.Tensor:
    """w = (1 - lambda) c + lambda (1 - c), lambda = progress = (epoch + 1) / epochs.

    Early in training confident rows weigh most; late, unconfident ones.
    """
    return (1.0 - progress) * confidence + progress * (1.0 - confidence)


def ccr_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor, progress: float,
             tau_teacher: float = 0.1, tau_student: float = 1.0) -> torch.Tensor:
    """mean_rows w * sum_k -q_k log softmax(l_s / tau_s)_k with q = softmax(l_w / tau_t).

    The teacher q and the weights w carry no gradient.
    """
    with torch.no_grad():
        q = logits_weak.float().div(tau_teacher).softmax(dim=1)
        w = ccr_weights(q.max(dim=1).values, progress)
    log_p = logits_strong.float().div(tau_student).log_softmax(dim=1)
    return (w * -(q * log_p).sum(dim=1)).mean()
