"""Dynamic Prototype Pruning, DPP (METHOD.md section 5).

At the end of an epoch, from the usage u_j (how many weak-view rows had
prototype j as argmax), estimate how many novel prototypes to keep, merge the
rest into the kept ones and, only if that shrinks the valid count, write the
result back into the prototype matrix. Every function here is deterministic in
its inputs, so processes that hold the same all-reduced usage prune identically.
"""
from __future__ import annotations

import math
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


@dataclass
class Merge:
    anchors: torch.Tensor   # [keep, D] the merged anchors, in order of usage
    order: torch.Tensor     # [N] novel indices: the anchors (usage order), then every other prototype


def merge_into_anchors(novel: torch.Tensor, usage: torch.Tensor, keep: int, anchor_norm: str = "unit") -> Merge:
    """[N, D] novel prototypes -> ``keep`` anchors.

    The ``keep`` most used prototypes (ties: lower index first) are anchors,
    in order of usage; every other prototype joins the anchor of highest
    cosine similarity. An anchor that some prototype joined becomes the
    L2-normalised mean of itself and its members; an anchor nobody joined
    keeps its learned vector (and norm) unchanged. ``anchor_norm="members"``
    (not in the paper) scales a joined anchor to the mean norm of itself and
    its members instead of 1.
    """
    if anchor_norm not in ANCHOR_NORMS:
        raise ValueError(f"anchor_norm={anchor_norm!r}; choose one of {ANCHOR_NORMS}")
    order = torch.sort(usage.flatten().to(novel.device), descending=True, stable=True).indices
    anchor_idx, others = order[:keep], order[keep:]
    anchors = novel[anchor_idx].clone()
    if len(others):
        similarity = F.normalize(novel[others], dim=1) @ F.normalize(novel[anchor_idx], dim=1).t()
        joined = torch.cat([torch.arange(keep, device=novel.device), similarity.argmax(dim=1)])
        members = novel[order]
        ones = torch.ones(len(joined), dtype=novel.dtype, device=novel.device)
        counts = torch.zeros(keep, dtype=novel.dtype, device=novel.device).index_add_(0, joined, ones)
        mean = torch.zeros_like(anchors).index_add_(0, joined, members) / counts[:, None]
        merged = F.normalize(mean, dim=1)
        if anchor_norm == "members":
            norms = torch.zeros_like(counts).index_add_(0, joined, members.norm(dim=1))
            merged = merged * (norms / counts)[:, None]
        was_joined = counts > 1
        anchors[was_joined] = merged[was_joined]
    return Merge(anchors, order)


@dataclass
class PruneResult:
    k_kept: int           # novel prototypes kept by the rule this epoch (after the max_drop bound)
    valid_before: int
    valid_after: int      # the estimate of the number of novel classes is valid_after - num_known
    order: torch.Tensor | None  # written back: new novel row i holds what was novel row order[i]; else None

    @property
    def pruned(self) -> bool:
        return self.order is not None


def bounded_keep(keep: int, num_novel: int, max_drop: float) -> int:
    """``keep`` raised so that one epoch removes at most ``max_drop`` of the
    ``num_novel`` current novel prototypes (1.0: no bound, the paper's rule)."""
    return max(keep, num_novel - math.floor(max_drop * num_novel + 1e-9))


@torch.no_grad()
def prune_prototypes(weight: torch.Tensor, valid: torch.Tensor, num_known: int, usage: torch.Tensor,
                     coverage: float = 0.9544, anchor_norm: str = "unit", max_drop: float = 1.0) -> PruneResult:
    """Prune in place: ``weight`` [P, D] prototype matrix, ``valid`` its
    0-d long buffer, ``usage`` [valid] counts over the valid prototypes.

    Only when num_known + kept < valid: rows 0..num_known-1 stay, the anchors
    follow them, rows beyond are zeroed and ``valid`` shrinks. Otherwise the
    matrix is left exactly as it is. ``max_drop`` bounds the share of the
    novel prototypes one call may remove (``bounded_keep``).
    """
    valid_before = int(valid)
    novel_usage = usage[num_known:valid_before]
    keep = bounded_keep(estimate_kept(novel_usage, coverage), valid_before - num_known, max_drop)
    if num_known + keep >= valid_before:
        return PruneResult(keep, valid_before, valid_before, None)
    merge = merge_into_anchors(weight[num_known:valid_before].float(), novel_usage, keep, anchor_norm)
    weight[num_known:valid_before] = 0
    weight[num_known:num_known + keep] = merge.anchors.to(weight.dtype)
    valid.fill_(num_known + keep)
    return PruneResult(keep, valid_before, num_known + keep, merge.order)


OPTIMIZER_STATE_RULES = ("keep", "move")


def move_optimizer_rows(optimizer: torch.optim.Optimizer, param: torch.Tensor, num_known: int,
                        result: PruneResult) -> None:
    """``prune_optimizer_state=move``: permute the per-element optimiser state
    (Adam's exp_avg and exp_avg_sq, together) with the rows of a written-back
    prune, so each anchor keeps its own moments at its new index.

    The default, ``keep``, leaves the state where it is, as the authors'
    release does (a row inherits the moments of the row that was there).
    Zeroing the moments instead would be wrong while Adam's per-tensor step
    counter stays: bias correction would then scale those rows' next updates
    by 2-5x.
    """
    if not result.pruned:
        return
    rows = num_known + result.order.to(param.device)
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[num_known:result.valid_before] = value[rows].clone()
