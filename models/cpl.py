"""CPL as a method (docs/baselines.md, CPL): the shared network without frequency
attention, plus 3x3 part features with one BNNeck each, and four loss terms from
losses/cpl.py on the weak view. ``forward(x, parts=True)`` also returns the global
and part features, so the training step goes through ``model`` (and any DDP
wrapper) once. Its recipe (Adam 2e-4, weight decay 1e-5, StepLR(10, 0.2)) is in
configs/cpl_*.py.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.cpl import (gumbel_targets, margin_cross_entropy, mean_entropy, pairwise_bce, soft_pseudo_label_loss,
                        voting_partners)
from models.heads import bn_neck
from models.method import Method, register_method
from models.network import PrototypeNet, full_precision, network_args
from utils.config import AT_LEAST_ONE, NON_NEGATIVE, Section

CPL_KEYS = Section(
    keys={
        "cpl_parts": (3, "part grid side: parts x parts part features, each with its own BNNeck"),
        "cpl_margin": (0.2, "raise of the target logit in the labelled cross-entropy (the release's -m)"),
        "cpl_glv_weight": (0.5, "weight of the global-local voting pairwise BCE (eta1)"),
        "cpl_csp_weight": (0.5, "weight of the confidence-based soft pseudo-label loss (eta2)"),
        "cpl_entropy_weight": (1.0, "weight of the mean entropy, subtracted from the loss (eta3)"),
    },
    rules={"cpl_parts": AT_LEAST_ONE, "cpl_margin": NON_NEGATIVE, "cpl_glv_weight": NON_NEGATIVE,
           "cpl_csp_weight": NON_NEGATIVE, "cpl_entropy_weight": NON_NEGATIVE},
    resume_fixed=("cpl_parts",),
)


def part_pool(fmap: torch.Tensor, parts: int) -> torch.Tensor:
    """[B, D, h, w] -> [B, D, parts^2]: average windows at stride floor(h / parts)
    and size h - (parts - 1) * stride, as the release pools (overlapping windows);
    a map smaller than parts x parts (tiny test inputs) is pooled adaptively."""
    h, w = fmap.shape[-2:]
    if h < parts or w < parts:
        return F.adaptive_avg_pool2d(fmap, parts).flatten(2)
    stride = (h // parts, w // parts)
    kernel = (h - (parts - 1) * stride[0], w - (parts - 1) * stride[1])
    return F.avg_pool2d(fmap, kernel_size=kernel, stride=stride).flatten(2)


class CPLNet(PrototypeNet):
    """The shared network plus one BNNeck per part feature."""

    def __init__(self, *, parts: int, **network):
        super().__init__(**network)
        self.parts = parts
        self.part_necks = nn.ModuleList(bn_neck(self.backbone.num_features) for _ in range(parts ** 2))

    def forward(self, x: torch.Tensor, parts: bool = False):
        """Logits [B, C]; with ``parts``: (logits, global feature [B, D], part features [B, D, parts^2])."""
        fmap = self.feature_map(x)
        z = self.pooled(fmap)
        with full_precision(z):
            logits = self.prototypes(self.dropout(z))
            if not parts:
                return logits
            pooled = part_pool(fmap.float(), self.parts)
            part_features = torch.stack([neck(pooled[:, :, k]) for k, neck in enumerate(self.part_necks)], dim=2)
            return logits, z, part_features


@register_method("cpl", CPL_KEYS)
class CPL(Method):
    NAME, TITLE = "CPL", "contrastive pseudo learning, Sun et al., ICCV 2023"

    @classmethod
    def network(cls, cfg, num_known: int, num_classes: int) -> CPLNet:
        return CPLNet(parts=cfg.cpl_parts, num_prototypes=num_classes, **network_args(cfg))

    @classmethod
    def describe(cls, cfg) -> str:
        return f"a {cfg['backbone']} backbone with a BNNeck, {cfg['cpl_parts']}x{cfg['cpl_parts']} part features"

    def training_step(self, batch: dict, epoch: int) -> dict:
        """The four terms on the weak view; the loss is ce + w_glv glv + w_csp csp - w_en entropy."""
        cfg, labels = self.cfg, batch["label"]
        logits, features, parts = self.model(batch["weak"], parts=True)
        with full_precision(logits):
            logits = logits.float()
            probs = logits.softmax(dim=1)
            partner, accepted = voting_partners(features, parts, labels)
            terms = {
                "ce": margin_cross_entropy(logits, labels, cfg.cpl_margin),
                "glv": pairwise_bce(probs, partner),
                "csp": soft_pseudo_label_loss(logits, gumbel_targets(logits), accepted, labels < 0),
                "entropy": mean_entropy(probs),
                "glv_accepted": accepted.float().sum(),
            }
            loss = (terms["ce"] + cfg.cpl_glv_weight * terms["glv"] + cfg.cpl_csp_weight * terms["csp"]
                    - cfg.cpl_entropy_weight * terms["entropy"])
        return {"loss": loss, **terms}
