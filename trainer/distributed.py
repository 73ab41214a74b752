"""torch.distributed helpers. Under torchrun (WORLD_SIZE > 1) the process
group is NCCL on CUDA and gloo on CPU; a plain ``python train.py`` is one
process and every helper below degrades to a no-op."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


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


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            device_id=device if device.type == "cuda" else None)
    return info


def reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes (a copy; the input is untouched)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor.clone()
    out = tensor.clone()
    dist.all_reduce(out)
    return out


def gather_objects(obj) -> list:
    """Every process's ``obj``, in rank order (one-element list when single-process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
