"""Execution choices made in one place for training, evaluation and
benchmarks: bf16 autocast (CUDA) and the channels_last memory layout."""
from __future__ import annotations

import contextlib

import torch


def autocast_for(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled and supported; nothing elsewhere."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def place_model(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def to_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images
