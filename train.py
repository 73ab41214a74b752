"""Train CAL, or a baseline (method=cpl, method=simgcd), on OWDFA-40 or any folder tree in its layout.

    python train.py configs/owdfa40_p1.py dataset_root=/data/OWDFA40-Benchmark/data
    python train.py configs/demo.py run_dir=exp/demo epochs=2 backbone=resnet18
    python train.py --resume exp/owdfa40_p1/20261126-101500      # continue a stopped run
    python train.py configs/demo.py split_file=exp/demo/<stamp>/split.json   # train on a recorded split
    torchrun --nproc_per_node 4 train.py configs/owdfa40_p1.py   # several GPUs

Overrides are ``key=value`` for any key of configs/base.py; on resume, keys that shape the data,
model or step (utils/config.py RESUME_FIXED) and the known classes cannot change, and
lr/weight_decay/lr_step/lr_gamma apply from the next step. Flags: ``--trust_checkpoint`` loads an
old or foreign pickle last.pt (it can run code); ``--allow_split_change`` resumes on another split.
Exit codes: 0 done, 2 bad configuration or data, or out of memory (naming the size to lower), 1
failure in training, 128+signal when stopped. A fresh run that fails before its first checkpoint
leaves no folder behind.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

log = logging.getLogger("train")


def parse_args(argv: list[str]) -> SimpleNamespace:
    """Config path, key=value overrides, resume dir and flags from the command line."""
    args = SimpleNamespace(config=None, overrides=[], resume="", trust_checkpoint=False, allow_split_change=False)
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if arg == "--resume":
            if not rest:
                raise SystemExit("error: --resume needs a run directory")
            args.resume = rest.pop(0)
        elif arg.startswith("--resume="):
            args.resume = arg.split("=", 1)[1]
        elif arg in ("--trust_checkpoint", "--allow_split_change"):
            setattr(args, arg[2:], True)
        elif arg.startswith("--"):
            raise SystemExit(f"error: unknown flag {arg!r}; flags are --resume, --trust_checkpoint, "
                             f"--allow_split_change (config keys are key=value)")
        elif "=" in arg:
            args.overrides.append(arg)
        elif args.config is None:
            args.config = arg
        else:
            raise SystemExit(f"error: unexpected argument {arg!r}; use key=value for overrides")
    return args


def resolve_config(args):
    """(config, checkpoint state or None, keys changed on resume or None for a fresh run).

    A fresh run: file + overrides. A resume: the run's own config (from
    last.pt, or config.json when it was stopped before its first checkpoint)
    + overrides that leave the keys of RESUME_FIXED alone.
    """
    from models.method import upgrade_config
    from utils.checkpoint import load_checkpoint
    from utils.config import (ConfigError, load_config, merge, parse_overrides, read_json_config, recorded_config,
                              resume_changes, validate)

    resume = args.resume or parse_overrides(args.overrides).get("resume", "")
    overrides = [o for o in args.overrides if not o.startswith("resume=")]
    if not resume:
        if args.config is None:
            raise ConfigError("no config file given: python train.py configs/<experiment>.py [key=value ...] "
                              "(or --resume RUN_DIR)")
        return load_config(args.config, overrides), None, None
    last, recorded = Path(resume) / "checkpoints" / "last.pt", Path(resume) / "config.json"
    if last.is_file():
        state = load_checkpoint(last, trust=args.trust_checkpoint)
        saved = recorded_config(upgrade_config(state["config"]), str(last))
    elif recorded.is_file():  # stopped before its first checkpoint: start it afresh, same config and split
        state = None
        saved = recorded_config(upgrade_config(read_json_config(recorded)), str(recorded))
    else:
        raise ConfigError(f"resume={resume!r} has no checkpoints/last.pt and no config.json; pass the run "
                          f"directory of an earlier run (exp/<experiment>/<timestamp>)")
    cfg = merge(saved, {**parse_overrides(overrides), "resume": resume, "run_dir": resume}, "the command line")
    changes = resume_changes(saved, cfg)
    validate(cfg)
    check_same_classes(saved, cfg, state, resume)
    return cfg, state, changes


def check_same_classes(saved, cfg, state: dict | None, resume: str) -> None:
    """A resumed run keeps its class table: the classes_file's content (index, name, family,
    known/real role) must give the table the run trained on (its fingerprint)."""
    from dataset.protocols import ClassTableError, class_fingerprint, describe_class_change, label_space

    now = label_space(cfg).class_rows()
    before = state.get("classes") if state is not None else label_space(saved).class_rows()
    recorded = state.get("class_fingerprint") if state is not None else class_fingerprint(before)
    if recorded is None or recorded == class_fingerprint(now):
        return
    what = describe_class_change(before, now) if before else "the checkpoint lists no classes"
    raise ClassTableError(f"a resumed run keeps its classes, but the class table of classes_file="
                          f"{cfg.classes_file or '(OWDFA-40)'} differs from the one {resume} trained on: {what}; "
                          f"restore that file, or start a new run with it")


def main(argv: list[str]) -> int:
    from dataset.protocols import ClassTableError
    from dataset.split import DatasetError
    from models.backbone import BackboneError
    from utils.checkpoint import CheckpointError
    from trainer.trainer import NonFiniteLoss
    from utils.config import ConfigError
    from utils.memory import OutOfMemory
    from utils.run_dir import RunDirError, log_fatal

    try:
        args = parse_args(argv)
        cfg, state, changes = resolve_config(args)
        return run(cfg, state, changes, args.allow_split_change)
    except (ConfigError, ClassTableError, DatasetError, BackboneError, RunDirError, CheckpointError,
            OutOfMemory) as err:
        log_fatal(err)  # stderr, and log.txt once the run has one
        return 2
    except (NonFiniteLoss, OSError) as err:  # OSError: a full disk names its free space
        log_fatal(err)
        return 1
    finally:
        from utils.distributed import cleanup
        cleanup()


def run(cfg, state: dict | None, changes: dict | None = None, allow_split_change: bool = False) -> int:
    from dataset.owdfa import check_batch_fits, check_dataset_root, draw_split
    from dataset.protocols import label_space
    from models.backbone import check_backbone, input_normalisation
    from utils.device import resolve_device
    from utils.distributed import broadcast_object, init_distributed
    from utils.memory import memory_hint
    from utils.run_dir import FreshRunDir, RunLock

    # Everything that can be checked without reading an image is checked before anything is created.
    check_dataset_root(cfg.dataset_root)
    label_space(cfg)
    check_backbone(cfg.backbone, cfg.pretrained, cfg.pretrained_path)
    cfg.input_mean, cfg.input_std = input_normalisation(cfg.backbone, cfg.input_mean, cfg.input_std)  # recorded
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device)
    if cfg.batch_size % dist.world_size:
        from utils.config import ConfigError
        raise ConfigError(f"batch_size={cfg.batch_size} is the global batch and must be divisible by the "
                          f"{dist.world_size} processes; choose a multiple of {dist.world_size}")
    drawn = draw_split(cfg)  # folder listing only; its warnings reach log.txt through the split summary
    check_batch_fits(drawn[0], cfg)
    lock = fresh = None
    if dist.is_main:
        fresh = None if cfg.resume else FreshRunDir(cfg)
        run_path = Path(cfg.resume) if cfg.resume else fresh.path
        lock = RunLock(run_path)  # one writer per run, until this run ends
    try:
        with memory_hint("training", ("batch_size=", cfg.batch_size), ("image_size=", cfg.image_size)):
            return train_in(Path(broadcast_object(str(run_path) if dist.is_main else None)), cfg, state, changes,
                            allow_split_change, lock, dist, device, drawn)
    except BaseException:
        if fresh is not None and not fresh.started:  # a failed start leaves nothing that blocks its retry
            lock.release()
            fresh.discard()
        raise
    finally:
        if lock is not None:
            lock.release()


def train_in(run_path: Path, cfg, state, changes, allow_split_change: bool, lock, dist, device, drawn) -> int:
    from dataset.owdfa import build_data
    from utils.distributed import barrier
    from trainer.trainer import StopSignal, Trainer
    from utils.run_dir import setup_logging, write_run_files
    from utils.seed import seed_everything

    cfg.run_dir = str(run_path)
    setup_logging(run_path, dist.is_main, dist.rank)
    if dist.is_main:
        prepare_run_dir(run_path, cfg, state, lock, dist.world_size)
    log.info("run directory: %s (device %s, %d process%s)", run_path, device, dist.world_size,
             "es" if dist.world_size > 1 else "")

    seed_everything(cfg.seed)
    data = build_data(cfg, dist.is_main, barrier, drawn=drawn)  # a signal here just ends the process
    check_split(data, state, run_path, allow_split_change, dist.is_main)
    if dist.is_main and cfg.resume:  # only a resume that passed every check is recorded
        write_run_files(run_path, cfg, dist.world_size, changes)
        if changes:
            log.info("resumed with changed keys (recorded in config_history.jsonl): %s",
                     ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    log.info("split:\n%s", data.split.summary())
    if data.crop_report:
        log.info("face crops: %s", data.crop_report["total"])
    with StopSignal() as stop:
        method = build_method(cfg, data, state, device, dist)
        trainer = Trainer(cfg, method, data, run_path, dist, device)
        if state is not None:
            trainer.restore(state)
        return trainer.fit(stop)


def prepare_run_dir(run_path: Path, cfg, state: dict | None, lock, world_size: int) -> None:
    """Main process, holding the lock: record a fresh run's start, clear what crashed writers left behind."""
    from trainer.checkpoint import reconcile_best, remove_temporaries
    from utils.run_dir import write_run_files

    if lock.previous:
        log.warning("took over the lock of %s, which ended without releasing it", lock.previous)
    if not cfg.resume:
        write_run_files(run_path, cfg, world_size)
    removed = remove_temporaries(run_path / "checkpoints")
    if removed:
        log.info("removed %d temporary checkpoint file(s) of interrupted saves: %s", len(removed),
                 ", ".join(p.name for p in removed))
    if state is not None:
        message = reconcile_best(run_path / "checkpoints", state)
        if message:
            log.warning("%s", message)
    elif cfg.resume:
        log.info("%s has no checkpoint yet: starting it afresh from its config.json", run_path)


def check_split(data, state: dict | None, run_path: Path, allow_change: bool, is_main: bool) -> None:
    """Refuse to continue a run on a split other than the one it started with;
    write split.json (main process)."""
    from dataset.split_file import read_split_json, verify_split

    recorded = run_path / "split.json"
    if state is not None:
        expected = state.get("split_fingerprint")
        if expected is None:
            log.warning("the checkpoint records no split fingerprint (older code): the split is not verified")
    else:
        expected = read_split_json(recorded).fingerprint if recorded.is_file() else None
    change = verify_split(data.record, expected, recorded, allow_change)
    if not is_main:
        return
    if change:
        kept = recorded.with_name(f"split.replaced-{time.strftime('%Y%m%d-%H%M%S')}.json")
        if recorded.exists():
            recorded.replace(kept)
        log.warning("%s; continuing on the new split (--allow_split_change), the old one kept as %s",
                    change, kept.name)
    data.record.write(recorded)


def build_method(cfg, data, state: dict | None, device, dist):
    """The config's method on ``device`` (weights from ``state`` when resuming), DDP-wrapped under torchrun."""
    import torch

    from models.method import create_method
    from utils.device import place_model

    method = create_method(cfg, data.split.num_known, data.split.num_classes)
    if state is not None:
        method.net.load_state_dict(state["model"])
    place_model(method.model, device, cfg.channels_last, cfg.cudnn_benchmark)
    if dist.enabled:
        torch.manual_seed(cfg.seed + dist.rank)  # distinct dropout masks per process
        if cfg.sync_batchnorm:
            method.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method.model)
        method.model = torch.nn.parallel.DistributedDataParallel(
            method.model, device_ids=[device] if device.type == "cuda" else None)
    return method


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
