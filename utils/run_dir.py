"""The run directory: where a run's config, log, metrics and checkpoints live.

exp/<experiment>/<timestamp>/
    config.json     resolved config as first started (enough to rerun: python train.py config.json)
    config_history.jsonl  keys changed on each resume (time, key -> [old, new])
    run.json        command line, git commit (+ dirty flag), versions, world size
    split.json      the split trained on (dataset/split_file.py)
    .lock           held (flock) by the one process writing the run: its pid and host
    log.txt         the console log
    metrics.jsonl   one JSON object per epoch
    checkpoints/    last.pt, best.pt
    tb/             TensorBoard events
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from utils.disk import disk_full_message, is_disk_full
from utils.text import printable

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


class FreshRunDir:
    """A fresh run's directory (``new_run_dir``) that a failed start takes away again.

    Until the run has ``started`` (written its first checkpoint: an epoch
    finished, or a signal saved one mid-epoch), everything the start wrote
    (config.json, run.json, split.json, log.txt, .lock, checkpoints/, tb/) is
    removed by ``discard``, so a retry with the same ``run_dir`` works; a
    ``run_dir`` that existed empty is left empty.
    """

    def __init__(self, cfg):
        self.existed = bool(cfg.run_dir) and Path(cfg.run_dir).is_dir()
        self.path = new_run_dir(cfg)

    @property
    def started(self) -> bool:
        """Whether the run holds a checkpoint to resume from."""
        return (self.path / "checkpoints" / "last.pt").exists()

    def discard(self) -> None:
        import shutil

        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            if Path(handler.baseFilename).parent == self.path.resolve():
                root.removeHandler(handler)
                handler.close()
        if not self.existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for child in self.path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


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


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock`` for as long as this object lives.

    The kernel drops the lock when its process dies, so the lock of a killed
    run is simply taken over; the file's text (pid, host, start) names the
    current holder, for the message a second writer gets.
    """

    def __init__(self, run_path: Path):
        self.path = run_path / ".lock"
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "an unknown process"
            self.handle.close()
            raise RunDirError(f"run {run_path} is being written by {holder}; one process writes a run at a time. "
                              f"Wait for it to end (or stop it) before resuming") from None
        self.handle.seek(0)
        self.previous = self.handle.read().strip()  # a holder that died without releasing
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on host {platform.node()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})")
        self.handle.flush()

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.truncate(0)  # an empty file: released cleanly
            self.handle.close()      # closing drops the flock


def write_run_files(path: Path, cfg, world_size: int, changes: dict | None = None) -> None:
    """A fresh run records its config; a resumed one (``changes`` given) appends
    the keys it changed to config_history.jsonl and keeps config.json."""
    import torch

    if changes is None:
        write_json(path / "config.json", dict(cfg))
    elif changes:
        with open(path / "config_history.jsonl", "a") as handle:
            handle.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "changes": changes}) + "\n")
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
    fmt = PrintableFormatter("%(asctime)s %(levelname).1s " + (f"[rank {rank}] " if rank else "") + "%(message)s",
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


class PrintableFormatter(logging.Formatter):
    """Log lines as valid UTF-8: a file name's undecodable bytes appear as ``\\xHH`` (utils/text.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


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
    message = printable(message)
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
