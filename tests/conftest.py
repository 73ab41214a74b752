"""Shared fixtures: the repository root on sys.path, a tiny synthetic dataset,
two tiny trained runs (known K, DPP), each built once per test run however many
pytest-xdist workers use it, and a helper that runs the command-line entry
points in a subprocess."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import models  # noqa: E402,F401  (registers the methods, as every entry point does)

# Small, fast settings shared by the end-to-end tests (2 CPU cores, < 10 min suite).
TINY = ["image_size=32", "backbone=resnet18", "pretrained=false", "num_workers=0", "batch_size=64",
        "test_batch_size=128", "budget_real=24", "budget_known=12", "budget_novel=12", "device=cpu"]
# DPP with unknown K and an early ACR start: every piece of training state is put to work
DPP = [*TINY, "unknown_k=true", "cal_novel_prototypes=paper", "cal_pseudo_start=1", "epochs=3"]


HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "lift_fresh", "lift_fresh_copy"}


@pytest.fixture
def host_reads():
    """A context manager class whose instances record, in ``seen``, the ops that read
    device data on the host or build tensors from host data: on CUDA each is a host
    sync (the CPU waits for the GPU). Checked on the CPU, where the same ops run."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class HostReads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if name in HOST_READS:
                self.seen.append(name)
            return func(*args, **(kwargs or {}))

    return HostReads


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once per test run. Under pytest-xdist the
    workers share it: the first to ask builds it under a file lock, the others wait and reuse it,
    so a shared tiny run is trained once rather than once per worker."""
    base = tmp_path_factory.getbasetemp()
    common = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # one per test run
    folder, built = common / name, common / f"{name}.built"
    with open(common / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes or the process dies
        if not built.exists():  # never built, or a build that failed: start afresh
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


def trained_once(tmp_path_factory, name: str, *args: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``python train.py <args>`` into ``name``/run once per test run (``built_once``): the run
    directory and the training's output."""
    def build(folder: Path) -> None:
        result = run_cli("train.py", *args, f"run_dir={folder / 'run'}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        (folder / "output.json").write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))

    folder = built_once(tmp_path_factory, name, build)
    output = json.loads((folder / "output.json").read_text())
    return folder / "run", subprocess.CompletedProcess(["train.py", *args], 0, output["stdout"], output["stderr"])


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory) -> Path:
    """A mini OWDFA-40 tree: 12 images per forgery class at 32 px."""
    from dataset.synthetic import generate

    return built_once(tmp_path_factory, "mini", lambda folder: generate(folder / "data", per_class=12, size=32,
                                                                        seed=0)) / "data"


CPL_SCALE = 0.004  # of the OW-DFA counts: 6 + 2 images per known method, 6 per novel one, 60 + 20 Youtube-Real


@pytest.fixture(scope="session")
def cpl_root(tmp_path_factory) -> Path:
    """A mini OW-DFA tree in the CPL release's nested layout, counts times CPL_SCALE, at 32 px."""
    from dataset.synthetic import generate

    return built_once(tmp_path_factory, "mini_cpl", lambda folder: generate(folder / "data", size=32, seed=0,
                                                                            layout="cpl", scale=CPL_SCALE)) / "data"


@pytest.fixture(scope="session")
def known_k_run(mini_root, tmp_path_factory):
    """One finished 2-epoch run on the mini dataset and its output, shared by the end-to-end tests
    (tests that change a run work on a copy)."""
    return trained_once(tmp_path_factory, "known_k", "configs/demo.py", f"dataset_root={mini_root}", "epochs=2",
                        "cal_pseudo_start=1", *TINY)


@pytest.fixture(scope="session")
def dpp_run(mini_root, tmp_path_factory) -> Path:
    """One finished 3-epoch DPP run (settings ``DPP``) on the mini dataset, shared and left unchanged."""
    return trained_once(tmp_path_factory, "dpp", "configs/demo.py", f"dataset_root={mini_root}", *DPP)[0]


def run_cli(*args: str, timeout: float = 300, env: dict | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root (``stdin`` as its input) and capture its output."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=_cli_env(env), input=stdin)


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``python <args>`` like ``run_cli`` without waiting (``communicate()`` collects the output)."""
    return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_cli_env(env))


def _cli_env(env: dict | None) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
