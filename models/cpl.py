"""CPL as a method object (docs/baselines.md, CPL): a ResNet with BNNeck, its
3x3 part features, and four loss terms from losses/cpl.py on the weak view.

The network is CAL's without frequency attention, plus one BNNeck per part;
``forward(x, parts=True)`` also returns the global and part features, so the
training step goes through ``model`` (and any DDP wrapper) once.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.cpl import (gumbel_targets, margin_cross_entropy, mean_entropy, pairwise_bce, soft_pseudo_label_loss,
                        voting_partners)
from models.cal_net import CALNet, full_precision
from models.method_base import NetworkMethod


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


class CPLNet(CALNet):
    def __init__(self, cfg, num_classes: int):
        super().__init__(cfg.backbone, num_classes, cfg.pretrained, cfg.pretrained_path, False, cfg.dropout,
                         cfg.prototype_init_std, False, cfg.input_mean, cfg.input_std)
        self.parts = cfg.cpl_parts
        dim = self.backbone.num_features
        self.part_necks = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(self.parts ** 2))
        for neck in self.part_necks:
            neck.bias.requires_grad_(False)

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


class CPL(NetworkMethod):
    NAME, TITLE = "CPL", "contrastive pseudo learning, Sun et al., ICCV 2023"

    @staticmethod
    def network(cfg, num_known: int, num_classes: int) -> CPLNet:
        return CPLNet(cfg, num_classes)

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
