"""CPL's loss terms (docs/baselines.md, CPL): margin cross-entropy, the
global-local voting pairs and their pairwise BCE, the confidence-weighted soft
pseudo-labels and the mean entropy. ``labels`` marks unlabelled rows with -1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def margin_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean CE over the labelled rows with their target logit raised by ``margin``
    (the release's ``MarginLoss(m=-margin, s=1)``); 0 with a graph when none is labelled."""
    labelled = labels >= 0
    target = labels.clamp_min(0)
    shift = F.one_hot(target, logits.shape[1]).to(logits.dtype) * (margin * labelled.to(logits.dtype)).unsqueeze(1)
    total = F.cross_entropy(logits + shift, labels, ignore_index=-1, reduction="sum")
    return total / labelled.sum().clamp_min(1)


def part_similarity(parts: torch.Tensor) -> torch.Tensor:
    """P[i, j] = sum_k w[i, k] cos(parts[i, :, k], parts[j, :, k]) for parts [B, D, K],
    with w[i] = row i's part norms scaled to unit L2 norm."""
    unit = F.normalize(parts, dim=1)
    cosines = torch.einsum("idk,jdk->ijk", unit, unit)
    weights = F.normalize(parts.norm(dim=1), dim=1)
    return (cosines * weights.unsqueeze(1)).sum(dim=2)


def voting_partners(features: torch.Tensor, parts: torch.Tensor, labels: torch.Tensor) -> tuple:
    """(partner [B], accepted [B]) of the global-local vote; no gradient.

    Labelled row: a random other labelled row of its class (itself when alone).
    Unlabelled row u: its nearest other row c(u) by global cosine similarity is
    accepted when the second-highest part similarity of u is at least the
    second-highest part similarity any row has to c(u); else u itself.
    ``accepted`` is true only for unlabelled rows whose c(u) was accepted.
    """
    with torch.no_grad():
        unit = F.normalize(features.float(), dim=1)
        top = (unit @ unit.t()).topk(2, dim=1).indices
        sim = part_similarity(parts.float())
        own = sim.topk(2, dim=1).values[:, 1]
        to_candidate = sim[:, top[:, 1]].topk(2, dim=0).values[1]
        unlabelled = labels < 0
        accepted = unlabelled & (own >= to_candidate)
        itself = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        same = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~unlabelled.unsqueeze(0) & ~itself
        alone = ~same.any(dim=1, keepdim=True)
        choice = torch.multinomial((same | (alone & itself)).float(), 1)  # uniform over each row's candidates
        partner = torch.where(unlabelled, torch.where(accepted, top[:, 1], top[:, 0]), choice.squeeze(1))
    return partner, accepted


def pairwise_bce(probs: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """mean_i BCE(p_i . p_partner(i), 1), gradients through both factors."""
    agreement = (probs * probs[partner]).sum(dim=1).clamp(0.0, 1.0)
    return F.binary_cross_entropy(agreement, torch.ones_like(agreement))


def gumbel_targets(logits: torch.Tensor) -> torch.Tensor:
    """Soft pseudo-labels: a Gumbel-softmax sample (temperature 1) of the detached logits."""
    return F.gumbel_softmax(logits.detach(), tau=1.0, hard=False)


def soft_pseudo_label_loss(logits: torch.Tensor, targets: torch.Tensor, accepted: torch.Tensor,
                           unlabelled: torch.Tensor) -> torch.Tensor:
    """mean over unlabelled rows of accepted * p[argmax target] * CE(logits, target);
    the confidence p keeps its gradient, as in the release."""
    log_p = logits.log_softmax(dim=1)
    confidence = log_p.exp().gather(1, targets.argmax(dim=1, keepdim=True)).squeeze(1)
    per_row = -(targets * log_p).sum(dim=1) * confidence * accepted.to(logits.dtype)
    return (per_row * unlabelled.to(logits.dtype)).sum() / unlabelled.sum().clamp_min(1)


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """H(mean_i p_i), probabilities clamped at 1e-8 (the release's ``entropy``)."""
    p_bar = probs.mean(dim=0).clamp_min(1e-8)
    return -(p_bar * p_bar.log()).sum()
