"""SimGCD as a method object (docs/baselines.md, SimGCD): CAL's backbone and
BNNeck without frequency attention, cosine prototypes, a projection MLP, and
the loss terms of losses/simgcd.py on the weak and strong views.

``forward(x, projections=True)`` also returns the projections, so the training
step goes through ``model`` (and any DDP wrapper) once.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.simgcd import (info_nce, mean_entropy_regulariser, self_distillation, supervised_contrastive,
                           teacher_temperature)
from losses.supervised import supervised_loss
from models.cal_net import CALNet, PrototypeClassifier, full_precision
from models.method_base import NetworkMethod


class CosinePrototypes(PrototypeClassifier):
    """logits = (z / |z|) (W[:valid] / |W[:valid]|)^T: the weight-normalised last layer with g = 1."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z, dim=1) @ F.normalize(self.weight[: self.num_valid], dim=1).t()


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


class SimGCDNet(CALNet):
    def __init__(self, cfg, num_classes: int):
        super().__init__(cfg.backbone, num_classes, cfg.pretrained, cfg.pretrained_path, False, 0.0,
                         cfg.prototype_init_std, False, cfg.input_mean, cfg.input_std)
        dim = self.backbone.num_features
        self.prototypes = CosinePrototypes(dim, num_classes, cfg.prototype_init_std)
        self.projector = projection_head(dim, cfg.simgcd_hidden_dim, cfg.simgcd_projection_dim, cfg.simgcd_mlp_layers)

    def forward(self, x: torch.Tensor, projections: bool = False):
        """Cosine logits [B, C]; with ``projections``: (logits, projections [B, P])."""
        z = self.features(x)
        with full_precision(z):
            logits = self.prototypes(z)
            return (logits, self.projector(z)) if projections else logits


class SimGCD(NetworkMethod):
    NAME, TITLE = "SimGCD", "parametric generalized category discovery, Wen et al., ICCV 2023"

    @staticmethod
    def network(cfg, num_known: int, num_classes: int) -> SimGCDNet:
        return SimGCDNet(cfg, num_classes)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Cosine logits over the student temperature, so their softmax is the trained prediction."""
        return self.model(images) / self.cfg.simgcd_student_temperature

    def training_step(self, batch: dict, epoch: int) -> dict:
        """Both views as one batch; loss = (1 - w)(distil + w_me me + unsup) + w (cls + supcon)."""
        cfg, labels = self.cfg, batch["label"]
        logits, proj = self.model(torch.cat([batch["weak"], batch["strong"]]), projections=True)
        with full_precision(logits):
            (weak, strong), (proj_weak, proj_strong) = logits.float().chunk(2), proj.float().chunk(2)
            tau_s = cfg.simgcd_student_temperature
            tau_t = teacher_temperature(epoch, cfg.simgcd_warmup_teacher_epochs,
                                        cfg.simgcd_warmup_teacher_temperature, cfg.simgcd_teacher_temperature)
            terms = {
                "cls": supervised_loss(weak, strong, labels, tau_s),
                "distil": self_distillation(weak, strong, tau_s, tau_t),
                "memax": mean_entropy_regulariser(torch.cat([weak, strong]), tau_s),
                "unsup_con": info_nce(proj_weak, proj_strong, cfg.simgcd_unsup_temperature),
                "sup_con": supervised_contrastive(proj_weak, proj_strong, labels, cfg.simgcd_supcon_temperature,
                                                  cfg.simgcd_supcon_temperature),
            }
            w = cfg.simgcd_sup_weight
            loss = ((1 - w) * (terms["distil"] + cfg.simgcd_memax_weight * terms["memax"] + terms["unsup_con"])
                    + w * (terms["cls"] + terms["sup_con"]))
        return {"loss": loss, **terms}
