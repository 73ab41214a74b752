"""The bare network inside the wrappers the trainer may add around it
(DistributedDataParallel, torch.compile), for checkpoints and for the method
object, which reads and edits the network's own parameters."""
from __future__ import annotations

import torch


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif hasattr(model, "module"):
            model = model.module
        else:
            return model
