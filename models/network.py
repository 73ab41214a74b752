"""The network every method builds: backbone -> [frequency attention] -> pool -> BNNeck -> prototype head.

x [B,3,H,W] (uint8 from the data pipeline, normalised here with the backbone's
mean/std, models/backbone.py ``input_normalisation``; a float input is taken as already normalised) -> f(x) [B,D,h,w] (* frequency mask [B,1,h,w]) -> GAP z [B,D]
-> BatchNorm1d (bias frozen at 0) -> dropout -> logits z W[:V]^T [B,V],
where W [P,D] is the prototype matrix and V <= P the number of valid
prototypes. V is a buffer, so it travels with every state dict and a pruned
checkpoint is evaluated on exactly the rows it was trained with.

Precision: under autocast only the backbone runs in bf16; pooling, the BNNeck
and the prototype logits run in fp32 (METHOD.md section 6: the CCR teacher's
temperature 0.1 multiplies logit rounding errors by 10).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.backbone import create_backbone, input_normalisation
from models.frequency import FrequencyAttention
from models.heads import PrototypeClassifier, bn_neck


def full_precision(tensor: torch.Tensor):
    """A region where autocast is off, so float32 inputs stay float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def normalise_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] -> float (x - mean) / std with ``mean``/``std`` [1,3,1,1] in uint8 units
    (the backbone's times 255); float input passes unchanged."""
    if x.dtype != torch.uint8:
        return x
    return (x.float() - mean) / std


def network_args(cfg) -> dict:
    """The PrototypeNet arguments every method takes from the shared keys of configs/base.py."""
    return {"backbone": cfg.backbone, "pretrained": cfg.pretrained, "pretrained_path": cfg.pretrained_path,
            "dropout": cfg.dropout, "init_std": cfg.prototype_init_std, "input_mean": cfg.input_mean,
            "input_std": cfg.input_std}


class PrototypeNet(nn.Module):
    """The shared network, built with keyword arguments: ``classifier`` is the prototype head's
    class (``PrototypeClassifier``, or ``CosinePrototypes``), ``frequency_attention`` adds the
    DCT mask (``fused_gate``: its Triton gate on CUDA); a method adds its own parts around it."""

    def __init__(self, *, backbone: str, num_prototypes: int, pretrained: bool = False, pretrained_path: str = "",
                 frequency_attention: bool = False, fused_gate: bool = False, dropout: float = 0.0,
                 init_std: float = 0.001, classifier: type[PrototypeClassifier] = PrototypeClassifier,
                 input_mean=(), input_std=()):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, pretrained_path)
        dim = self.backbone.num_features
        self.attention = FrequencyAttention(fused_gate=fused_gate) if frequency_attention else None
        self.neck = bn_neck(dim)
        self.dropout = nn.Dropout(dropout)
        self.prototypes = classifier(dim, num_prototypes, init_std)
        # The backbone's mean/std (or the given ones) in uint8 units, as buffers that move with the network
        # but stay out of state dicts (the config carries them: input_mean/input_std); built per forward from
        # Python floats, they would be two host-to-device copies, each a host sync on CUDA, in every step
        mean, std = input_normalisation(backbone, input_mean, input_std)
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's map [B, D, h, w], times the frequency mask when there is one."""
        x = normalise_input(x, self.input_mean, self.input_std)
        fmap = self.backbone.forward_features(x)
        if self.attention is not None:
            fmap = fmap * self.attention(x, fmap.shape[-2:]).to(fmap.dtype)
        return fmap

    def pooled(self, fmap: torch.Tensor) -> torch.Tensor:
        """BNNeck feature z [B, D] of a feature map, in float32."""
        with full_precision(fmap):
            return self.neck(F.adaptive_avg_pool2d(fmap.float(), 1).flatten(1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised feature z [B, D] (before dropout)."""
        return self.pooled(self.feature_map(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the valid prototypes [B, V], float32 under autocast too."""
        z = self.features(x)
        with full_precision(z):
            return self.prototypes(self.dropout(z))
