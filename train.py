"""Train CAL on OWDFA-40 (or any folder tree in its layout).

    python train.py configs/owdfa40_p1.py dataset_root=/data/OWDFA40-Benchmark/data
    python train.py configs/demo.py run_dir=exp/demo epochs=2 backbone=resnet18
    python train.py --resume exp/owdfa40_p1/20261126-101500      # continue a stopped run
    torchrun --nproc_per_node 4 train.py configs/owdfa40_p1.py   # several GPUs

Overrides are ``key=value`` for any key of configs/base.py. Exit codes: 0
done, 2 bad configuration or data, 1 failure during training, 128+signal
when stopped by SIGINT/SIGTERM (last.pt saved; resume with --resume).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("train")


def parse_args(argv: list[str]) -> tuple[str | None, list[str], str]:
    """(config path, key=value overrides, resume dir) from the command line."""
    config, overrides, resume = None, [], ""
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if arg == "--resume":
            if not args:
                raise SystemExit("error: --resume needs a run directory")
            resume = args.pop(0)
        elif arg.startswith("--resume="):
            resume = arg.split("=", 1)[1]
        elif "=" in arg:
            overrides.append(arg)
        elif config is None:
            config = arg
        else:
            raise SystemExit(f"error: unexpected argument {arg!r}; use key=value for overrides")
    return config, overrides, resume


def resolve_config(config: str | None, overrides: list[str], resume: str):
    """A fresh run: file + overrides. A resume: the run's own config + overrides."""
    from trainer.checkpoint import load_checkpoint
    from utils.config import ConfigError, defaults, load_config, merge, parse_overrides, validate

    resume = resume or parse_overrides(overrides).get("resume", "")
    overrides = [o for o in overrides if not o.startswith("resume=")]
    if not resume:
        if config is None:
            raise ConfigError("no config file given: python train.py configs/<experiment>.py [key=value ...] "
                              "(or --resume RUN_DIR)")
        return load_config(config, overrides), None
    last = Path(resume) / "checkpoints" / "last.pt"
    if not last.is_file():
        raise ConfigError(f"resume={resume!r} has no checkpoints/last.pt; pass the run directory of an earlier "
                          f"run (exp/<experiment>/<timestamp>)")
    state = load_checkpoint(last)
    saved = merge(defaults(), state["config"], str(last))
    cfg = merge(saved, {**parse_overrides(overrides), "resume": resume, "run_dir": resume}, "the command line")
    changed = sorted(k for k in cfg if cfg[k] != saved[k] and k not in ("resume", "run_dir"))
    if changed:
        log.warning("resuming with changed keys %s: the continued run differs from the original", changed)
    validate(cfg)
    return cfg, state


def main(argv: list[str]) -> int:
    from dataset.split import DatasetError
    from models.backbone import BackboneError
    from trainer.checkpoint import CheckpointError
    from trainer.trainer import NonFiniteLoss
    from utils.config import ConfigError
    from utils.run_dir import RunDirError

    try:
        cfg, state = resolve_config(*parse_args(argv))
        return run(cfg, state)
    except (ConfigError, DatasetError, BackboneError, RunDirError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLoss as err:
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        from trainer.distributed import cleanup
        cleanup()


def run(cfg, state: dict | None) -> int:
    from dataset.owdfa import build_data, check_dataset_root
    from trainer.distributed import barrier, broadcast_object, init_distributed, resolve_device
    from trainer.trainer import StopSignal, Trainer
    from utils.run_dir import new_run_dir, setup_logging, write_run_files
    from utils.seed import seed_everything

    check_dataset_root(cfg.dataset_root)  # fail before creating anything
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device)
    if cfg.batch_size % dist.world_size:
        from utils.config import ConfigError
        raise ConfigError(f"batch_size={cfg.batch_size} is the global batch and must be divisible by the "
                          f"{dist.world_size} processes; choose a multiple of {dist.world_size}")
    if dist.is_main:
        run_path = Path(cfg.resume) if cfg.resume else new_run_dir(cfg)
    run_path = Path(broadcast_object(str(run_path) if dist.is_main else None))
    cfg.run_dir = str(run_path)
    setup_logging(run_path, dist.is_main, dist.rank)
    if dist.is_main:
        write_run_files(run_path, cfg, dist.world_size)
    log.info("run directory: %s (device %s, %d process%s)", run_path, device, dist.world_size,
             "es" if dist.world_size > 1 else "")

    seed_everything(cfg.seed)
    data = build_data(cfg, dist.is_main, barrier)  # a signal here just ends the process: nothing to save yet
    log.info("split:\n%s", data.split.summary())
    if data.crop_report:
        log.info("face crops: %s", data.crop_report["total"])
    with StopSignal() as stop:
        method = build_method(cfg, data, state, device, dist)
        trainer = Trainer(cfg, method, data, run_path, dist, device)
        if state is not None:
            trainer.restore(state)
        return trainer.fit(stop)


def build_method(cfg, data, state: dict | None, device, dist):
    """CAL on ``device`` (weights from ``state`` when resuming), DDP-wrapped under torchrun."""
    import torch

    from models.cal import CAL
    from trainer.device import place_model

    method = CAL(cfg, data.split.num_known, data.split.num_classes)
    if state is not None:
        method.net.load_state_dict(state["model"])
    place_model(method.model, device, cfg.channels_last)
    if dist.enabled:
        torch.manual_seed(cfg.seed + dist.rank)  # distinct dropout masks per process
        if cfg.sync_batchnorm:
            method.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method.model)
        method.model = torch.nn.parallel.DistributedDataParallel(
            method.model, device_ids=[device] if device.type == "cuda" else None)
    return method


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
