"""The heads the methods share: the BNNeck and the prototype classifiers (plain and cosine),
and a projection MLP. Every classifier keeps its number of valid rows in the buffer ``valid``,
so a pruned or seeded head travels with its state dict."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def bn_neck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d with weight 1 and its bias frozen at 0: a shift-free feature (BNNeck)."""
    neck = nn.BatchNorm1d(dim)
    nn.init.ones_(neck.weight)
    nn.init.zeros_(neck.bias)
    neck.bias.requires_grad_(False)
    return neck


class PrototypeClassifier(nn.Module):
    """logits = z W[:valid]^T; no bias, no normalisation; rows >= valid are unused."""

    def __init__(self, dim: int, num_prototypes: int, init_std: float = 0.001):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_prototypes, dim).normal_(0.0, init_std))
        self.register_buffer("valid", torch.tensor(num_prototypes, dtype=torch.long))
        self._valid_seen: tuple | None = None  # the buffer's (identity, storage, version) at the last read
        self._valid_count = num_prototypes

    @property
    @torch.compiler.disable  # reads tensor metadata and caches a Python int: eager only
    def num_valid(self) -> int:
        """The valid count as a Python int, read from the buffer only when the
        buffer changed (pruning's fill_, load_state_dict's copy_, .to(): new
        identity or in-place version), so a training step costs no host sync."""
        seen = (id(self.valid), self.valid.data_ptr(), self.valid._version)
        if seen != self._valid_seen:
            self._valid_count, self._valid_seen = int(self.valid), seen
        return self._valid_count

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.valid_rows().t()

    def valid_rows(self) -> torch.Tensor:
        """The valid prototype rows [V, D] (for prototype similarity and seeding)."""
        return self.weight[: self.num_valid]


class CosinePrototypes(PrototypeClassifier):
    """logits = (z / |z|) (W[:valid] / |W[:valid]|)^T: the weight-normalised last layer with g = 1."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=1) @ F.normalize(self.valid_rows(), dim=1).t()


def projection_head(dim: int, hidden: int, out: int, layers: int) -> nn.Sequential:
    """Linear-GELU stack dim -> hidden (x layers-1) -> out, truncated-normal init (std 0.02)."""
    widths = [dim] + [hidden] * (layers - 1) + [out]
    modules = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        linear = nn.Linear(a, b)
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
        modules += [linear] + ([nn.GELU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*modules)
