"""SimGCD as a method (docs/baselines.md, SimGCD): the shared network without
frequency attention, with cosine prototypes and a projection MLP, the loss terms
of losses/simgcd.py on the weak and strong views, and the release's weight-decay
exemption of biases and norm layers. ``forward(x, projections=True)`` also
returns the projections, so the training step goes through ``model`` (and any
DDP wrapper) once.
"""
from __future__ import annotations

import torch

from losses.simgcd import (info_nce, mean_entropy_regulariser, self_distillation, supervised_contrastive,
                           teacher_temperature)
from losses.supervised import supervised_loss
from models.heads import CosinePrototypes, projection_head
from models.method import Method, register_method
from models.network import PrototypeNet, full_precision, network_args
from utils.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, Section

SIMGCD_KEYS = Section(
    keys={
        "simgcd_sup_weight": (0.35, "lambda: weight of the supervised terms, 1 - lambda for the unsupervised ones"),
        "simgcd_memax_weight": (2.0, "weight of the mean-entropy regulariser"),
        "simgcd_student_temperature": (0.1, "student temperature of both classification terms"),
        "simgcd_teacher_temperature": (0.04, "teacher temperature after the warm-up"),
        "simgcd_warmup_teacher_temperature": (0.07, "teacher temperature at epoch 0, linear to the one above"),
        "simgcd_warmup_teacher_epochs": (30, "epochs of the teacher temperature warm-up"),
        "simgcd_unsup_temperature": (1.0, "temperature of the unsupervised contrastive loss (the release's call)"),
        "simgcd_supcon_temperature": (0.07, "temperature of the supervised contrastive loss"),
        "simgcd_projection_dim": (256, "projector output width"),
        "simgcd_hidden_dim": (2048, "projector hidden width"),
        "simgcd_mlp_layers": (3, "projector linear layers"),
    },
    rules={"simgcd_sup_weight": UNIT, "simgcd_memax_weight": NON_NEGATIVE, "simgcd_student_temperature": POSITIVE,
           "simgcd_teacher_temperature": POSITIVE, "simgcd_warmup_teacher_temperature": POSITIVE,
           "simgcd_warmup_teacher_epochs": AT_LEAST_ONE, "simgcd_unsup_temperature": POSITIVE,
           "simgcd_supcon_temperature": POSITIVE, "simgcd_projection_dim": AT_LEAST_ONE,
           "simgcd_hidden_dim": AT_LEAST_ONE, "simgcd_mlp_layers": AT_LEAST_ONE},
    resume_fixed=("simgcd_projection_dim", "simgcd_hidden_dim", "simgcd_mlp_layers"),
)


class SimGCDNet(PrototypeNet):
    """The shared network with cosine prototypes, plus the projection MLP."""

    def __init__(self, *, hidden_dim: int, projection_dim: int, mlp_layers: int, **network):
        super().__init__(classifier=CosinePrototypes, **network)
        self.projector = projection_head(self.backbone.num_features, hidden_dim, projection_dim, mlp_layers)

    def forward(self, x: torch.Tensor, projections: bool = False):
        """Cosine logits [B, C]; with ``projections``: (logits, projections [B, P])."""
        z = self.features(x)
        with full_precision(z):
            logits = self.prototypes(z)
            return (logits, self.projector(z)) if projections else logits


@register_method("simgcd", SIMGCD_KEYS)
class SimGCD(Method):
    NAME, TITLE = "SimGCD", "parametric generalized category discovery, Wen et al., ICCV 2023"

    @classmethod
    def network(cls, cfg, num_known: int, num_classes: int) -> SimGCDNet:
        return SimGCDNet(hidden_dim=cfg.simgcd_hidden_dim, projection_dim=cfg.simgcd_projection_dim,
                         mlp_layers=cfg.simgcd_mlp_layers, num_prototypes=num_classes,
                         **{**network_args(cfg), "dropout": 0.0})  # the release has no dropout

    @classmethod
    def describe(cls, cfg) -> str:
        return f"a {cfg['backbone']} backbone with a BNNeck, cosine prototypes and a projection head"

    def parameter_groups(self) -> list[dict]:
        """Weight decay on weight matrices and kernels only; biases and norm layers (parameters of
        one dimension) get none, as in the release."""
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        decays = [p.ndim > 1 and not name.endswith(".bias") for name, p in named]
        return [{"params": [p for (_, p), d in zip(named, decays) if d], "decay": True},
                {"params": [p for (_, p), d in zip(named, decays) if not d], "decay": False, "weight_decay": 0.0}]

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
