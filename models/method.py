"""The method contract and the registry of methods.

A method is a class that registers itself once, with its name and its own
config keys (``@register_method("cal", CAL_KEYS)``), and owns its network, loss,
optimiser, schedule and epoch-end behaviour. The trainer calls the hooks below
and never looks inside them: it moves batches, runs autocast, backward, the
optimiser and the scheduler, evaluates, logs what the hooks return and saves.
``Method`` gives the defaults (Adam and StepLR from the shared keys, logits and
BNNeck features from a ``models.network.PrototypeNet``, no epoch-end change);
docs/extending.md shows a new method end to end.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from models.backbone import IMAGENET_MEAN, IMAGENET_STD
from models.wrappers import unwrap
from utils.config import ConfigError, Section, register_section

METHODS: dict[str, type[Method]] = {}
SCHEDULE_KEYS = ("lr", "weight_decay", "lr_step", "lr_gamma")  # what a resume may change in a restored schedule
# Shared keys added after runs were recorded, with the values those runs used: every network normalised
# its input with ImageNet's mean/std before input_mean/input_std existed.
RECORDED_BEFORE = {"input_mean": IMAGENET_MEAN, "input_std": IMAGENET_STD}


@dataclass
class EpochEnd:
    """What ``Method.on_epoch_end`` may use: ``reduce_sum`` adds a tensor over processes;
    ``train_features()`` gives (features [N, D], labels [N] with -1 for unlabelled) of every
    training image, gathered over processes (a pass over the training set: call it only when
    needed); ``optimizer`` is the method's own."""
    reduce_sum: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    train_features: Callable[[], tuple]


class Method:
    NAME, TITLE = "", ""  # short name and what it stands for (logs, model cards)

    def __init__(self, cfg, num_known: int, num_classes: int):
        self.cfg, self.num_known, self.num_classes = cfg, num_known, num_classes
        self.model = self.network(cfg, num_known, num_classes)

    @classmethod
    def network(cls, cfg, num_known: int, num_classes: int) -> torch.nn.Module:
        """The bare network of ``cfg`` (what checkpoints and exports hold; built on the meta
        device to check an export's tensors). Its ``prototypes`` head counts the valid rows in
        its ``valid`` buffer; everything a training step needs beside the logits goes through
        one ``model(...)`` call with keyword flags, so a DistributedDataParallel wrapper sees
        every forward."""
        raise NotImplementedError

    @classmethod
    def describe(cls, cfg) -> str:
        """The network in a few words, for model cards."""
        return f"a {cfg['backbone']} backbone with a BNNeck and a prototype classifier"

    @property
    def net(self) -> torch.nn.Module:
        """The bare network inside any DistributedDataParallel or torch.compile wrapper."""
        return unwrap(self.model)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def training_step(self, batch: dict, epoch: int) -> dict[str, torch.Tensor]:
        """``loss`` (to minimise) plus named scalar terms to log, as tensors (the trainer
        averages them on the device; no host sync per step)."""
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] over the valid prototypes (eval mode); the prediction is their argmax."""
        return self.model(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """BNNeck features [B, D] (eval mode): clustering, the abstain rule, t-SNE."""
        return self.net.features(images)

    def prototype_rows(self) -> np.ndarray:
        """The valid prototype rows [V, D] as float32 numpy (the abstain rule's prototype similarity)."""
        return self.net.prototypes.valid_rows().detach().float().cpu().numpy()

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam with L2 weight decay (``lr``, ``weight_decay``) over ``parameter_groups``; the
        fused CUDA kernel when every parameter is on CUDA."""
        groups = self.parameter_groups()
        params = [p for group in groups for p in group["params"]]
        fused = bool(params) and all(p.is_cuda for p in params)
        return torch.optim.Adam(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, fused=fused or None)

    def parameter_groups(self) -> list[dict]:
        """The optimiser's parameter groups: one, with the shared weight decay. A group with
        ``"decay": False`` gets none (e.g. biases and norm layers), now and after a resume."""
        return [{"params": self.parameters(), "decay": True}]

    def make_scheduler(self, optimizer: torch.optim.Optimizer):
        """StepLR every ``lr_step`` epochs by ``lr_gamma``."""
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.cfg.lr_step, gamma=self.cfg.lr_gamma)

    def apply_schedule(self, optimizer: torch.optim.Optimizer, scheduler) -> float:
        """Write ``lr``, ``weight_decay``, ``lr_step`` and ``lr_gamma`` of the config into a
        restored optimiser and StepLR, as if they had held from the start: the lr becomes
        ``lr * lr_gamma ** (epochs done // lr_step)``, StepLR's closed form. Returns the lr."""
        cfg = self.cfg
        lr = cfg.lr * cfg.lr_gamma ** (scheduler.last_epoch // cfg.lr_step)
        for group in optimizer.param_groups:
            group.update(lr=lr, initial_lr=cfg.lr, weight_decay=cfg.weight_decay if group.get("decay", True) else 0.0)
        scheduler.base_lrs = [cfg.lr] * len(optimizer.param_groups)
        scheduler.step_size, scheduler.gamma = cfg.lr_step, cfg.lr_gamma
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        return lr

    def on_epoch_end(self, epoch: int, context: EpochEnd) -> dict:
        """Epoch-level updates before evaluation; returns plain numbers to log. A method that
        may change its predictions here adds ``model_changed`` (bool): the trainer then logs
        the metrics from before as ``pre_update_*`` and evaluates again when it is true."""
        return {}

    def epoch_summary(self, record: dict) -> list[str]:
        """Extra parts of the epoch's log line (e.g. thresholds), from its record."""
        return []

    def state_dict(self) -> dict:
        """State beyond the network weights (thresholds, statistics)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def register_method(name: str, keys: Section | None = None):
    """Class decorator: ``method=name`` builds this class; ``keys`` are its own config keys."""
    def register(cls: type[Method]) -> type[Method]:
        register_section(name, keys or Section({}))
        METHODS[name] = cls
        return cls
    return register


def method_class(cfg) -> type[Method]:
    """The class of the method ``cfg.method`` names."""
    try:
        return METHODS[cfg.method]
    except KeyError:
        raise ConfigError(f"method={cfg.method!r} is not a method of this code; valid: {', '.join(METHODS)}") from None


def create_method(cfg, num_known: int, num_classes: int) -> Method:
    """The method object of ``cfg``, on the CPU, freshly initialised."""
    return method_class(cfg)(cfg, num_known, num_classes)


def create_network(cfg, num_known: int, num_classes: int) -> torch.nn.Module:
    """The network alone of the method of ``cfg`` (e.g. on the meta device, to check weights)."""
    return method_class(cfg).network(cfg, num_known, num_classes)


def upgrade_config(config: dict) -> dict:
    """A recorded config (a checkpoint's or an export's) with the shared keys added since it was
    written, at the values its run used; renamed method keys are read by ``utils.config.merge``."""
    return {**RECORDED_BEFORE, **config}
