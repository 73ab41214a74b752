"""The training loop: a plain PyTorch loop that knows no method (models/method.py).

Per step: move the batch, autocast, ``method.training_step``, backward, one
host sync on a finiteness/stop flag, the method's optimiser, on-device
accumulation of the logged terms. Per epoch: ``method.on_epoch_end``, the
method's scheduler, evaluation, metrics.jsonl / TensorBoard, atomic checkpoints.
At the end: the abstain threshold from the training images (discovery/abstain.py).

Stopping and resuming: SIGINT/SIGTERM finish the current step, save
``last.pt`` with the position inside the epoch, and exit non-zero (a second
signal exits at once). Resuming restores model, optimiser, scheduler, method
state, RNGs and the epoch's partial sums; as every sample's augmentation is
seeded by its draw position, the resumed run continues exactly where the
stopped one was.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import torch

from dataset.owdfa import Data, eval_loader, shutdown_workers, train_eval_set, train_loader
from dataset.protocols import class_fingerprint
from dataset.transforms import device_views
from discovery.abstain import calibrate
from models.method import SCHEDULE_KEYS, EpochEnd, Method
from models.wrappers import unwrap
from utils.checkpoint import save_atomic
from utils.device import autocast_for, compile_network, to_layout, use_bf16
from utils.distributed import DistInfo, reduce_sum
from utils.evaluation import extract_features, predict, prediction_metrics
from utils.memory import memory_hint
from utils.run_dir import MetricsLog, write_json
from utils.seed import rng_state, set_rng_state
from utils.tables import format_table
from utils.text import percent

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
COUNTERS = ("replaced_images", "skipped_steps")  # summed over the epoch; other terms are averaged
PRE_UPDATE_KEYS = ("all_acc", "known_acc", "novel_acc", "nmi", "ari", "discovery_rate")  # also before an epoch-end change
BEST_SELECTION = "highest all_acc on the test set (as the authors select; optimistic, report the last epoch)"


class NonFiniteLoss(RuntimeError):
    pass


class StopSignal:
    """First SIGINT/SIGTERM: stop after the current step; second: exit at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum
        log.warning("received %s: finishing the current step, then saving last.pt "
                    "(send it again to exit at once)", signal.Signals(signum).name)


class Trainer:
    def __init__(self, cfg, method: Method, data: Data, run_path: Path, dist: DistInfo, device: torch.device):
        self.cfg, self.method, self.data, self.run_path = cfg, method, data, run_path
        self.dist, self.device = dist, device
        self.optimizer = method.make_optimizer()
        self.bf16 = use_bf16(cfg.amp, cfg.image_size)
        if cfg.compile:
            method.model = compile_network(method.model, device)
        self.scheduler = method.make_scheduler(self.optimizer)
        pin = device.type == "cuda"
        self.train_loader = train_loader(data, cfg, dist.rank, dist.world_size, pin)
        self.eval_loader = eval_loader(data, cfg, dist.rank, dist.world_size, pin)
        self.metrics_log = MetricsLog(run_path / "metrics.jsonl")
        self.classes = data.split.space.class_rows()
        self.history: list[dict] = []
        self.best: dict | None = None
        self.cluster_assignment: list[dict] = []  # last evaluation's prototype -> class matching
        self.final_outputs: dict = {}  # the last evaluation's test outputs
        self.abstain: dict | None = None  # the final weights' abstain threshold (discovery/abstain.py), never resumed
        self.global_step = 0
        self.position: dict | None = None   # inside an unfinished epoch: epoch, step, partial sums
        self.start_epoch = 0
        self.prototypes_at_start = len(method.prototype_rows())  # the start of k_estimate.png
        self.tb = None

    # ------------------------------------------------------------ state
    def checkpoint_state(self, epoch: int, position: dict | None = None) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "epoch": epoch, "position": position,
            "model": unwrap(self.method.model).state_dict(), "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(), "global_step": self.global_step, "history": self.history, "best": self.best,
            "config": dict(self.cfg), "num_known": self.data.split.num_known,
            "num_classes": self.data.split.num_classes, "protocol": self.cfg.protocol,
            "split_fingerprint": self.data.record.fingerprint if self.data.record else None,
            "classes": self.classes, "class_fingerprint": class_fingerprint(self.classes),
            "cluster_assignment": self.cluster_assignment, "abstain": self.abstain,
            "prototypes_at_start": self.prototypes_at_start,
        }

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint written by ``checkpoint_state`` (weights
        are loaded by the caller before the model is wrapped)."""
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        changed = [k for k in SCHEDULE_KEYS if state["config"].get(k) != self.cfg[k]]
        if changed:
            lr = self.method.apply_schedule(self.optimizer, self.scheduler)
            log.info("resume: %s written into the optimiser and scheduler; from the next step lr %.6g, "
                     "weight_decay %g (StepLR every %d epochs by %g, at epoch %d of the schedule)",
                     ", ".join(f"{k} {state['config'].get(k)!r} -> {self.cfg[k]!r}" for k in changed), lr,
                     self.cfg.weight_decay, self.cfg.lr_step, self.cfg.lr_gamma, self.scheduler.last_epoch)
        set_rng_state(state["rng"])  # rank 0's streams; other ranks draw their own below
        if not self.dist.is_main:
            torch.manual_seed(self.cfg.seed + 1_000_003 * self.dist.rank + state["global_step"])
        self.global_step, self.history, self.best = state["global_step"], state["history"], state["best"]
        self.position = state["position"]
        self.cluster_assignment = state.get("cluster_assignment", [])
        self.prototypes_at_start = state.get("prototypes_at_start")
        self.start_epoch = self.position["epoch"] if self.position else state["epoch"] + 1
        if self.dist.is_main:
            self.metrics_log.rewrite(self.history)
        where = f"epoch {self.start_epoch}" + (f", step {self.position['step']}" if self.position else "")
        log.info("resumed from %s: continuing at %s", self.run_path / "checkpoints" / "last.pt", where)

    def save(self, name: str, state: dict) -> None:
        if self.dist.is_main:
            save_atomic(state, self.run_path / "checkpoints" / name)

    # ------------------------------------------------------------ loop
    def fit(self, stop: StopSignal) -> int:
        """Train to ``cfg.epochs``; returns the process exit code. ``stop``
        (installed by the caller) ends the run cleanly after the current step."""
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.run_path / "tb"), purge_step=self.global_step or None)
            if self.global_step == 0:
                write_hparams(self.tb, self.cfg)
        try:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                with self.training():
                    finished = self.train_epoch(epoch, stop)
                if not finished:
                    return self._stopped(stop.signum)
                with self.evaluating():
                    self.end_epoch(epoch)
            with self.evaluating():
                outputs = self.final_outputs if "features" in self.final_outputs else self.evaluate(features=True)[1]
                self.calibrate_abstain()
        finally:
            if self.tb is not None:
                self.tb.close()
            shutdown_workers(self.train_loader)
            shutdown_workers(self.eval_loader)
        self.final_summary(outputs)
        return 0

    def train_epoch(self, epoch: int, stop: StopSignal) -> bool:
        """One epoch (or its remainder after a resume); False when stopped by a signal."""
        from utils.progress import progress_bar

        position = self.position or {"epoch": epoch, "step": 0, "sums": {}, "counts": {}, "seconds": 0.0}
        self.position = None
        sums = {k: v.to(self.device) for k, v in position["sums"].items()}
        counts = dict(position["counts"])
        started = time.time() - position["seconds"]
        sampler = self.train_loader.batch_sampler
        sampler.set_epoch(epoch, position["step"])
        steps = sampler.num_draws // sampler.batch_size
        self.method.model.train()
        bar = progress_bar(self.train_loader, total=steps, initial=position["step"], desc=f"epoch {epoch}",
                           disable=not self.dist.is_main, mininterval=1, leave=False)
        for step, batch in enumerate(bar, start=position["step"]):
            out = self.train_step(batch, epoch, step, stop)
            for key, value in out.items():
                sums[key] = sums.get(key, 0) + value
                counts[key] = counts.get(key, 0) + 1
            self.global_step += 1
            if self.dist.is_main and self.global_step % self.cfg.log_every == 0:
                loss = float(out["loss"])
                bar.set_postfix(loss=f"{loss:.3f}")
                for key, value in out.items():
                    self.tb.add_scalar(f"step/{key}", float(value), self.global_step)
            if stop.signum is not None:
                self.position = {"epoch": epoch, "step": step + 1, "counts": counts,
                                 "sums": {k: v.detach().cpu() for k, v in sums.items()},
                                 "seconds": time.time() - started}
                return False
        self.epoch_terms = {k: int(sums[k]) if k in COUNTERS else float(sums[k]) / counts[k] for k in sums}
        for key in COUNTERS:
            self.epoch_terms.setdefault(key, 0)
        self.epoch_seconds = time.time() - started
        return True

    def train_step(self, batch: dict, epoch: int, step: int, stop: StopSignal) -> dict:
        """Forward, backward, optimiser step; returns detached terms plus data counters."""
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if self.cfg.gpu_augment:
            batch["weak"], batch["strong"] = device_views(batch.pop("source"), batch.pop("view_params"),
                                                          self.cfg.image_size)
        for key in ("weak", "strong"):
            batch[key] = to_layout(batch[key], self.cfg.channels_last)
        replaced = batch.pop("replaced")
        with autocast_for(self.device, self.bf16):
            out = self.method.training_step(batch, epoch)
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        flags = torch.stack([(~torch.isfinite(out["loss"].detach())).float(),
                             torch.full((), float(stop.signum is not None), device=self.device)])
        nonfinite, stopping = (reduce_sum(flags) > 0).tolist()  # the step's one host sync
        logged = {k: v.detach().float() for k, v in out.items()}
        logged["replaced_images"] = replaced.float().sum()
        if nonfinite:
            bad = sorted(k for k, v in out.items() if not torch.isfinite(v).all())
            message = (f"non-finite loss at epoch {epoch}, step {step}: "
                       + ", ".join(f"{k}={float(out[k].detach())}" for k in bad))
            if self.cfg.nonfinite_loss == "stop":
                kept = self.run_path / "checkpoints" / "last.pt"
                raise NonFiniteLoss(f"{message}. The last good checkpoint {kept} is kept"
                                    f"{'' if kept.exists() else ' (none written yet)'}. Lower lr, check the data, "
                                    f"or pass nonfinite_loss=skip to skip such steps")
            log.warning("%s; step skipped (nonfinite_loss=skip)", message)
            self.optimizer.zero_grad(set_to_none=True)
            return {"skipped_steps": torch.ones((), device=self.device),
                    "replaced_images": logged["replaced_images"]}
        self.optimizer.step()
        if stopping and stop.signum is None:
            stop.signum = signal.SIGTERM  # another process was signalled: stop together
        return logged

    def end_epoch(self, epoch: int) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        last = epoch == self.cfg.epochs - 1  # its test outputs (with features) feed the final plots
        before, self.final_outputs = self.evaluate(features=last)
        epoch_logs = self.method.on_epoch_end(epoch, EpochEnd(reduce_sum, self.optimizer, self.train_features))
        self.scheduler.step()
        # A method that may change the model at epoch end (pruning, seeding) is evaluated
        # before (as pre_update_*; what the authors' release reports) and after (the saved
        # model; the main keys), so tables can compare like with like.
        changed = epoch_logs.pop("model_changed", None)
        metrics = before
        if changed:
            metrics, self.final_outputs = self.evaluate(features=last)
        if changed is not None:
            metrics = {**metrics, **{f"pre_update_{k}": v for k, v in before.items() if k in PRE_UPDATE_KEYS}}
        self.cluster_assignment = metrics.pop("cluster_assignment")
        record = {"epoch": epoch, "lr": lr, **self.epoch_terms, **epoch_logs, **metrics,
                  "k_novel_true": self.data.split.num_novel_in_test, "seconds": round(self.epoch_seconds, 2)}
        self.history.append(record)
        is_best = metrics["all_acc"] is not None and (self.best is None or metrics["all_acc"] > self.best["all_acc"])
        if is_best:
            self.best = {"epoch": epoch, "all_acc": metrics["all_acc"], "selected_by": BEST_SELECTION}
        state = self.checkpoint_state(epoch)
        self.save("last.pt", state)
        if is_best:
            self.save("best.pt", {**state, "selected_on_test_set": True})
        if self.dist.is_main:
            self.metrics_log.append(record)
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    self.tb.add_scalar(f"epoch/{key}", value, epoch)
            self.tb.flush()
            log.info(" | ".join(epoch_line(record) + self.method.epoch_summary(record) + [f"{record['seconds']:.0f}s"]))

    def train_features(self) -> tuple:
        """(features [N, D], labels [N], -1 for unlabelled) of every training
        image in the test view, gathered over processes; for methods that
        cluster the training set at epoch end."""
        loader = eval_loader(self.data, self.cfg, self.dist.rank, self.dist.world_size, self.device.type == "cuda",
                             dataset=train_eval_set(self.data))
        try:
            return extract_features(self.method.features, self.method.model, loader, self.device, self.bf16,
                                    self.cfg.channels_last, progress=self.dist.is_main)
        finally:
            shutdown_workers(loader)

    def calibrate_abstain(self) -> None:
        """The final model's abstain threshold from its training images (discovery/abstain.py), saved in last.pt."""
        self.abstain = calibrate(self.train_features()[0], self.method.prototype_rows())
        log.info("abstain threshold %.4f (prototype similarity accepting %.0f%% of %d training images)",
                 self.abstain["threshold"], 100 * self.abstain["accept"], self.abstain["images"])
        state = self.checkpoint_state(self.history[-1]["epoch"] if self.history else -1)
        self.save("last.pt", state)
        if self.best and self.best["epoch"] == state["epoch"]:
            self.save("best.pt", {**state, "selected_on_test_set": True})

    def training(self):
        """Memory errors of a training epoch name batch_size and image_size (utils/memory.py)."""
        return memory_hint("training", ("batch_size=", self.cfg.batch_size), ("image_size=", self.cfg.image_size))

    def evaluating(self):
        """Memory errors of the passes over test or training images name test_batch_size."""
        return memory_hint("evaluating", ("test_batch_size=", self.cfg.test_batch_size))

    def evaluate(self, features: bool = False) -> tuple[dict, dict]:
        """Test metrics and ``predict``'s outputs (with BNNeck features when asked)."""
        out = predict(self.method.predict, self.method.model, self.eval_loader, self.device, self.bf16,
                      self.cfg.channels_last, self.method.features if features else None)
        return prediction_metrics(out, self.data.split.num_known), out

    def _stopped(self, signum: int) -> int:
        position = self.position
        self.save("last.pt", self.checkpoint_state(position["epoch"] - 1, position))
        log.warning("stopped at epoch %d, step %d; last.pt saved. Resume with: python train.py --resume %s",
                    position["epoch"], position["step"], self.run_path)
        return 128 + signum

    def final_summary(self, outputs: dict) -> None:
        """summary.json, the last epoch's test outputs (test_outputs.npz) and every plot."""
        if not self.dist.is_main or not self.history:
            return
        from utils.report import make_report, save_test_outputs

        last = self.history[-1]
        space = self.data.split.space
        summary = {"last_epoch": last, "best_epoch": self.best, "run_dir": str(self.run_path),
                   "num_known": space.num_known, "num_classes": space.num_classes, "task": space.name,
                   "class_table": space.table.name, "prototypes_at_start": self.prototypes_at_start}
        write_json(self.run_path / "summary.json", summary)
        save_test_outputs(self.run_path, outputs["label"], outputs["pred"], outputs["confidence"],
                          outputs["features"], space.label_names, self.cfg.seed)
        log.info("plots: %s", ", ".join(make_report(self.run_path)))
        log.info("final (last epoch %d):\n%s", last["epoch"], format_table(last))
        if self.best:
            log.info("best epoch by test all_acc (selected on the test set, optimistic): epoch %d, all_acc %s",
                     self.best["epoch"], percent(self.best["all_acc"]))


def write_hparams(writer, cfg) -> None:
    """The resolved config as TensorBoard hparams of this run (HPARAMS tab), with
    the per-epoch test accuracies as its metrics."""
    from torch.utils.tensorboard.summary import hparams

    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in cfg.items()}
    metrics = {f"epoch/{key}": 0.0 for key in ("all_acc", "known_acc", "novel_acc", "nmi", "ari")}
    for summary in hparams(values, metrics):
        writer.file_writer.add_summary(summary)


def epoch_line(record: dict) -> list[str]:
    """The parts of an epoch's log line every method shares: loss, accuracies, discovery."""
    parts = [f"epoch {record['epoch']}", f"loss {record.get('loss', float('nan')):.4f}"]
    parts += [f"{k} {percent(record.get(k))}" for k in ("all_acc", "known_acc", "novel_acc")]
    if record.get("discovery_rate") is not None:
        parts.append(f"discovery {percent(record['discovery_rate'])}")
    return parts
