"""timm backbones as feature-map extractors f(x) -> [B, D, h, w]."""
from __future__ import annotations

from pathlib import Path

import timm
import torch.nn as nn


class BackboneError(RuntimeError):
    """The backbone cannot be built as asked; the message names the fix."""


def create_backbone(name: str, pretrained: bool = False, pretrained_path: str = "") -> nn.Module:
    """A timm model without classifier or pooling; ``.num_features`` is D.

    With ``pretrained``, weights come from ``pretrained_path`` when given, else
    from the timm / Hugging Face cache (downloading when online). A failure is
    an error, never a silent random initialisation.
    """
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise BackboneError(f"backbone={name!r} is not a timm model; e.g. resnet18, resnet50, efficientnet_b0 "
                            f"(python -c 'import timm; print(timm.list_models())' lists them)")
    options = {"num_classes": 0, "global_pool": ""}
    if pretrained and pretrained_path:
        if not Path(pretrained_path).is_file():
            raise BackboneError(f"pretrained_path={pretrained_path!r} does not exist; give a timm/torchvision "
                                f"state-dict file for {name}, or pretrained_path= to use the timm cache")
        options["pretrained_cfg_overlay"] = {"file": str(pretrained_path)}
    try:
        return timm.create_model(name, pretrained=pretrained, **options)
    except Exception as err:  # timm raises many kinds (network, missing file, hub cache)
        if not pretrained:
            raise
        raise BackboneError(
            f"pretrained weights for backbone={name!r} could not be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:160]}). Fetch them once on a machine with network "
            f"(python -c \"import timm; timm.create_model('{name}', pretrained=True)\") so the Hugging Face "
            f"cache has them, or pass pretrained_path=FILE, or train from scratch with pretrained=false") from err
