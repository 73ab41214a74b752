"""Execution choices made in one place for training, evaluation and
benchmarks: the device, the autocast precision (``amp``), the channels_last
memory layout and torch.compile."""
from __future__ import annotations

import contextlib

import torch

# amp=auto: bf16 autocast from this input side up, fp32 below: small convolutions are bound by
# launches and casts, not by arithmetic, so bf16 only adds the casts (docs/performance.md)
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
    checkpoints never carry the ``_orig_mod.`` prefix. CUDA only: on a CPU it needs a C++
    toolchain and costs minutes per short run (its gain on a GPU: docs/performance.md)."""
    return torch.compile(model) if device.type == "cuda" else model


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda:<local rank> when CUDA is available, else cpu. A GPU that is
    not there is a ConfigError (one line), not a traceback."""
    from utils.config import ConfigError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but this machine has no usable CUDA GPU (torch {torch.__version__}, "
                              f"CUDA build {torch.version.cuda or 'none'}); use device=cpu or device=auto")
        if name == "cuda":
            name = f"cuda:{local_rank}"
        if torch.device(name).index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but only {torch.cuda.device_count()} GPU(s) are visible; "
                              f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)
