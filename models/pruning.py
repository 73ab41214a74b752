"""Dynamic Prototype Pruning, DPP (METHOD.md section 5).

At the end of an epoch, from the usage u_j (how many weak-view rows had
prototype j as argmax), estimate how many novel prototypes to keep, merge the
rest into the kept ones, and write the result back into the prototype matrix.
Every function here is deterministic in its inputs, so processes that hold
the same all-reduced usage prune identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def estimate_kept(usage: torch.Tensor, coverage: float = 0.9544) -> int:
    """Number of novel prototypes to keep, from their usage counts [N].

    Sort usage descending (s_0 >= s_1 >= ...); k_min is the first 0-based
    index where the cumulative share reaches ``coverage`` (all kept when the
    total is 0 or the share never reaches it). Tail extension over s[k_min:]:
    accept i = k_min, k_min+1, ... while s_i >= mean(tail) or
    |s_i - s_{i-1}| >= mean |consecutive tail differences| (difference 0 at
    i = k_min); stop at the first failure. Returns last accepted i + 1.
    """
    s = torch.sort(usage.double().flatten(), descending=True).values
    total = s.sum()
    if len(s) == 0 or total <= 0:
        return len(s)
    reached = torch.nonzero(torch.cumsum(s, 0) / total >= coverage)
    if len(reached) == 0:
        return len(s)
    k_min = int(reached[0])
    tail = s[k_min:]
    tail_mean = tail.mean()
    diff_mean = (tail[1:] - tail[:-1]).abs().mean() if len(tail) > 1 else torch.zeros((), dtype=s.dtype)
    last = k_min
    for i in range(k_min + 1, len(s)):
        if s[i] >= tail_mean or (s[i] - s[i - 1]).abs() >= diff_mean:
            last = i
        else:
            break
    return last + 1


ANCHOR_NORMS = ("unit", "members")


def merge_into_anchors(novel: torch.Tensor, usage: torch.Tensor, keep: int, anchor_norm: str = "unit") -> torch.Tensor:
    """[N, D] novel prototypes -> [keep, D] anchors.

    The ``keep`` most used prototypes (ties: lower index first) are anchors,
    in order of usage; every other prototype joins the anchor of highest
    cosine similarity; each anchor becomes the L2-normalised mean of itself
    and its members. ``anchor_norm="members"`` (not in the paper) then scales
    it to the mean norm of those members, so merged prototypes keep the
    logit scale of the rest of the matrix instead of jumping to norm 1.
    """
    if anchor_norm not in ANCHOR_NORMS:
        raise ValueError(f"anchor_norm={anchor_norm!r}; choose one of {ANCHOR_NORMS}")
    order = torch.sort(usage.flatten(), descending=True, stable=True).indices
    anchors, others = order[:keep], order[keep:]
    joined = torch.arange(keep, device=novel.device)  # each anchor joins itself
    if len(others):
        similarity = F.normalize(novel[others], dim=1) @ F.normalize(novel[anchors], dim=1).t()
        joined = torch.cat([joined, similarity.argmax(dim=1)])
    members = novel[torch.cat([anchors, others])]
    counts = torch.zeros(keep, dtype=novel.dtype, device=novel.device).index_add_(
        0, joined, torch.ones(len(joined), dtype=novel.dtype, device=novel.device))
    mean = torch.zeros(keep, novel.shape[1], dtype=novel.dtype, device=novel.device).index_add_(
        0, joined, members) / counts[:, None]
    merged = F.normalize(mean, dim=1)
    if anchor_norm == "members":
        norms = torch.zeros(keep, dtype=novel.dtype, device=novel.device).index_add_(0, joined, members.norm(dim=1))
        merged = merged * (norms / counts)[:, None]
    return merged


@dataclass
class PruneResult:
    k_novel: int          # novel prototypes kept (the estimate of the number of novel classes)
    valid_before: int
    valid_after: int
    rewritten: range      # rows whose values changed (anchors written, merged rows zeroed)


@torch.no_grad()
def prune_prototypes(weight: torch.Tensor, valid: torch.Tensor, num_known: int, usage: torch.Tensor,
                     coverage: float = 0.9544, anchor_norm: str = "unit") -> PruneResult:
    """Prune in place: ``weight`` [P, D] prototype matrix, ``valid`` its
    0-d long buffer, ``usage`` [valid] counts over the valid prototypes.

    Rows 0..num_known-1 stay; the anchors follow them; rows beyond are zeroed.
    ``valid`` becomes num_known + k_novel only if that is smaller.
    """
    valid_before = int(valid)
    novel_usage = usage[num_known:valid_before].to(weight.device)
    keep = estimate_kept(novel_usage, coverage)
    anchors = merge_into_anchors(weight[num_known:valid_before].float(), novel_usage, keep, anchor_norm)
    weight[num_known:valid_before] = 0
    weight[num_known:num_known + keep] = anchors.to(weight.dtype)
    valid_after = min(valid_before, num_known + keep)
    valid.fill_(valid_after)
    return PruneResult(keep, valid_before, valid_after, range(num_known, valid_before))


def reset_optimizer_rows(optimizer: torch.optim.Optimizer, param: torch.Tensor, rows: range) -> None:
    """Zero the per-element optimiser state (Adam's moments) of ``param[rows]``.

    A merged or moved prototype must not inherit the momentum of the row that
    previously lived at its index: that momentum belongs to another vector
    and would push the new one in a stale direction. The step counter is
    per-tensor and stays.
    """
    state = optimizer.state.get(param, {})
    for value in state.values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[rows.start:rows.stop] = 0
