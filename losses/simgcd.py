"""SimGCD's loss terms (docs/baselines.md, SimGCD): the teacher temperature
schedule, cross-view self-distillation, the mean-entropy regulariser, and the
unsupervised and supervised contrastive losses. The supervised classification
term is losses/supervised.py at the student temperature.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def teacher_temperature(epoch: int, warmup_epochs: int, start: float, end: float) -> float:
    """Linear from ``start`` (epoch 0) to ``end`` (epoch warmup_epochs - 1), then ``end``."""
    if epoch >= warmup_epochs - 1:
        return end
    return start + (end - start) * epoch / (warmup_epochs - 1)


def self_distillation(logits_weak: torch.Tensor, logits_strong: torch.Tensor, tau_student: float,
                      tau_teacher: float) -> torch.Tensor:
    """Each view's sharpened, detached prediction softmax(l / tau_teacher) teaches the
    other view's softmax(l / tau_student); the mean of the two cross-entropies over rows."""
    total = 0.0
    for teacher, student in ((logits_weak, logits_strong), (logits_strong, logits_weak)):
        q = teacher.detach().div(tau_teacher).softmax(dim=1)
        total = total + (-(q * student.div(tau_student).log_softmax(dim=1)).sum(dim=1)).mean()
    return total / 2


def mean_entropy_regulariser(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """log C - H(p_bar), p_bar the mean of softmax(l / tau) over the rows."""
    p_bar = logits.div(tau).softmax(dim=1).mean(dim=0)
    return math.log(p_bar.shape[0]) + (p_bar * p_bar.log()).sum()


def info_nce(proj_weak: torch.Tensor, proj_strong: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean CE over the 2B rows: the other view of the same image against every
    other row, on cosine similarities / temperature."""
    unit = F.normalize(torch.cat([proj_weak, proj_strong]), dim=1)
    n = unit.shape[0]
    sim = (unit @ unit.t()).div(temperature)
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=sim.device), float("-inf"))
    target = (torch.arange(n, device=sim.device) + n // 2) % n
    return F.cross_entropy(sim, target)


def supervised_contrastive(proj_weak: torch.Tensor, proj_strong: torch.Tensor, labels: torch.Tensor,
                           temperature: float = 0.07, base_temperature: float = 0.07) -> torch.Tensor:
    """SupCon over the labelled rows of both views (unlabelled rows, label -1, take
    no part): for each labelled anchor, -(t / t_base) times the mean log-probability
    of its positives (other labelled rows of its class) among every other labelled row."""
    unit = F.normalize(torch.cat([proj_weak, proj_strong]), dim=1)
    both = torch.cat([labels, labels])
    labelled = both >= 0
    n = unit.shape[0]
    others = labelled.unsqueeze(0) & ~torch.eye(n, dtype=torch.bool, device=unit.device)
    sim = (unit @ unit.t()).div(temperature).masked_fill(~others, -1e9)  # finite: rows without others stay NaN-free
    log_prob = sim - sim.logsumexp(dim=1, keepdim=True)
    positive = others & (both.unsqueeze(0) == both.unsqueeze(1))
    mean_pos = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1) / positive.sum(dim=1).clamp_min(1)
    per_anchor = -(temperature / base_temperature) * mean_pos * labelled.to(unit.dtype)
    return per_anchor.sum() / labelled.sum().clamp_min(1)
