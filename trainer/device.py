"""Execution choices made in one place for training, evaluation and
benchmarks: the autocast precision (``amp``), the channels_last memory
layout, torch.compile and the optimiser."""
from __future__ import annotations

import contextlib

import torch

# amp=auto: bf16 autocast from this input side up, fp32 below. Measured on an
# H100 (batch 128, channels_last): ResNet-50 @ 256 trains 41 % faster in bf16,
# ResNet-18 @ 64 29 % slower (its small convolutions are bound by launches and
# casts, not by arithmetic, so bf16 only adds the casts).
AUTO_BF16_MIN_SIZE = 128


def use_bf16(amp: str, image_size: int) -> bool:
    """Resolve the ``amp`` config value ("auto", "bf16" or "fp32") to bf16 on/off."""
    if amp == "auto":
        return image_size >= AUTO_BF16_MIN_SIZE
    if amp in ("bf16", "fp32"):
        return amp == "bf16"
    raise ValueError(f"amp={amp!r} must be 'auto', 'bf16' or 'fp32'")


def autocast_for(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when ``bf16`` (see ``use_bf16``) and supported; nothing elsewhere."""
    if not isinstance(bf16, bool):
        raise TypeError(f"autocast_for takes a bool (use_bf16(cfg.amp, cfg.image_size)), not {bf16!r}")
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def place_model(model: torch.nn.Module, device: torch.device, channels_last: bool,
                cudnn_benchmark: bool = True) -> torch.nn.Module:
    """``model`` on ``device`` in the chosen memory layout. On CUDA, ``cudnn_benchmark``
    lets cuDNN time its algorithms for each new input shape and keep the fastest
    (a process-wide setting; it pays off because the training batches repeat one shape)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def to_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def compile_network(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """torch.compile'd ``model`` on CUDA, ``model`` itself elsewhere. The compiled one shares
    the parameters, and ``unwrap`` (models/wrappers.py) returns the bare network, so
    checkpoints never carry the ``_orig_mod.`` prefix. CUDA only because that is where it was
    measured (+31 % ResNet-50 @ 256 bf16 on an H100 and an H200) and where a whole run with
    resume was checked; on a CPU it needs a C++ toolchain and costs minutes per short run."""
    return torch.compile(model) if device.type == "cuda" else model


def make_optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with L2 weight decay; the fused CUDA kernel (one launch for all
    parameters) when every parameter is on CUDA."""
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
