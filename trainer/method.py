"""The contract between the trainer and a method (CAL is models/cal.py; the
baselines CPL and SimGCD, models/cpl.py and models/simgcd.py; models/methods.py
builds any of them by name).

The trainer moves batches to the device, runs autocast, backward, the
optimiser and the scheduler, evaluates, logs whatever the method returns and
checkpoints; it never looks inside the losses. A new method implements this.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import torch


class Method(Protocol):
    model: torch.nn.Module  # the trainer may replace it with a DistributedDataParallel wrapper

    @staticmethod
    def network(cfg, num_known: int, num_classes: int) -> torch.nn.Module:
        """The bare network of ``cfg`` (what checkpoints and exports hold; built on the meta
        device to check an export's tensors). Its ``prototypes.valid`` buffer counts the valid
        classifier rows; everything else a training step needs, e.g. features or projections
        beside the logits, goes through one ``model(...)`` call with keyword flags, so a
        DistributedDataParallel wrapper sees every forward."""

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """Parameters to optimise."""

    def training_step(self, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        """``loss`` (to minimise) plus named scalar terms to log, as tensors
        (the trainer averages them on the device; no host sync per step)."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, D] of images (eval mode), for ``train_features`` and the run's t-SNE plot."""

    def on_epoch_end(self, epoch: int, reduce_sum: Callable[[torch.Tensor], torch.Tensor],
                     optimizer: torch.optim.Optimizer, train_features: Callable[[], tuple] | None = None) -> dict:
        """Epoch-level updates before evaluation; ``reduce_sum`` adds a tensor
        over processes; ``train_features()`` (costs a pass over the training
        images, so call it only when needed) gives (features, labels with -1
        for unlabelled) of every training image. Returns plain numbers to log; a method that may
        change its predictions here (pruning) adds ``model_changed`` (bool):
        the trainer then logs the metrics from before as ``pre_prune_*`` and
        evaluates again when it is true."""

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, V]; the prediction is their argmax."""

    def state_dict(self) -> dict:
        """State beyond the network weights (thresholds, statistics)."""

    def load_state_dict(self, state: dict) -> None: ...
