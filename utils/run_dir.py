"""The run directory: where a run's config, log, metrics and checkpoints live.

exp/<experiment>/<timestamp>/
    config.json     resolved config (enough to rerun: python train.py config.json)
    run.json        command line, git commit (+ dirty flag), versions, world size
    log.txt         the console log
    metrics.jsonl   one JSON object per epoch
    checkpoints/    last.pt, best.pt
    tb/             TensorBoard events
"""
from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from utils.disk import disk_full_message, is_disk_full

REPO_ROOT = Path(__file__).resolve().parent.parent


class RunDirError(RuntimeError):
    pass


def new_run_dir(cfg) -> Path:
    """``cfg.run_dir`` if given (must be new or empty), else exp/<experiment>/<timestamp>."""
    if cfg.run_dir:
        path = Path(cfg.run_dir)
        if path.exists() and any(path.iterdir()):
            raise RunDirError(f"run_dir={cfg.run_dir!r} exists and is not empty; it is never overwritten. "
                              f"Choose a new run_dir, or continue that run with --resume {cfg.run_dir}")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = REPO_ROOT / "exp" / cfg.experiment / stamp
        suffix = 1
        while path.exists():
            path = REPO_ROOT / "exp" / cfg.experiment / f"{stamp}-{suffix}"
            suffix += 1
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    return path


def git_state() -> dict:
    """Commit hash and whether the work tree differs from it (None outside git)."""
    def run(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    try:
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def write_run_files(path: Path, cfg, world_size: int) -> None:
    import torch

    write_json(path / "config.json", dict(cfg))
    info = {"command": [sys.executable, *sys.argv], "cwd": os.getcwd(), **git_state(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(),
            "python": platform.python_version(), "torch": torch.__version__, "world_size": world_size}
    with open(path / "run.json", "a") as handle:  # one line per start (resumes append)
        handle.write(json.dumps(info) + "\n")


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def setup_logging(path: Path | None, is_main: bool = True, rank: int = 0) -> None:
    """Console (main process: INFO, others: WARNING with rank) + log.txt on the main process."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname).1s " + (f"[rank {rank}] " if rank else "") + "%(message)s",
                            "%H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    console.setLevel(logging.INFO if is_main else logging.WARNING)
    root.addHandler(console)
    if path is not None and is_main:
        file_handler = logging.FileHandler(path / "log.txt")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # data warnings (empty folders, ...) reach log.txt too


def log_fatal(err: BaseException | str) -> str:
    """Report a fatal error as one plain line: on stderr, and in log.txt once ``setup_logging`` made one.

    A full disk is named as such, with the free space (torch and SQLite word it
    cryptically). Returns the line.
    """
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    message = str(err)
    if isinstance(err, BaseException) and is_disk_full(err) and not message.startswith("disk full"):
        where = getattr(err, "filename", None) or (Path(files[0].baseFilename).parent if files else os.getcwd())
        message = disk_full_message(where)
    elif isinstance(err, OSError):
        message = f"{type(err).__name__}: {err}"
    print(f"error: {message}", file=sys.stderr)
    record = logging.LogRecord("fatal", logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in files:
        try:
            handler.stream.write(handler.format(record) + handler.terminator)
            handler.flush()
        except (OSError, ValueError):  # the full disk may hold log.txt too; a closed stream
            pass
    return message


class MetricsLog:
    """metrics.jsonl: one JSON object per finished epoch."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, records: list[dict]) -> None:
        """Replace the file with ``records`` (resume: drop epochs the checkpoint lacks)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, self.path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
