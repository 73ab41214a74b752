"""A run never loses work: exact resume after SIGTERM, atomic checkpoints,
non-finite losses stop with a named message, mismatched checkpoints are refused."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import DPP, REPO, TINY, run_cli

import train
from dataset.folders import scan_dataset
from dataset.split import SplitSpec, make_split
from utils.checkpoint import CheckpointError, load_checkpoint, save_atomic
from utils.config import load_config


def metrics_without_time(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]  # wall times differ


def test_sigterm_then_resume_equals_an_uninterrupted_run(mini_root, dpp_run, tmp_path):
    stopped = tmp_path / "stopped"
    common = ["train.py", "configs/demo.py", f"dataset_root={mini_root}", *DPP]
    process = subprocess.Popen([sys.executable, *common, f"run_dir={stopped}"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = stopped / "metrics.jsonl"
    deadline = time.time() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert process.poll() is None and time.time() < deadline, "training ended before its first epoch"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert "Resume with: python train.py --resume" in output
    state = load_checkpoint(stopped / "checkpoints" / "last.pt")
    assert state["position"] is None or state["position"]["epoch"] >= 1

    resumed = run_cli("train.py", "--resume", str(stopped))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    assert metrics_without_time(stopped) == metrics_without_time(dpp_run)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1, "weights": torch.arange(5)}, path)

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="previous last.pt is intact"):
        save_atomic({"epoch": 2}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "no temporary file left behind"


def nan_after(calls: int, real):
    """A prior-regularisation stand-in that turns NaN from call ``calls`` on."""
    count = {"n": 0}

    def patched(*args, **kwargs):
        count["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if count["n"] > calls else value
    return patched


def test_nan_loss_stops_naming_epoch_step_and_term(mini_root, tmp_path, monkeypatch, capsys):
    import models.cal

    steps_per_epoch = len(make_split(scan_dataset(str(mini_root)), SplitSpec.from_config(
        load_config("configs/demo.py", TINY))).train_paths) // 64
    monkeypatch.setattr(models.cal, "prior_regularisation",
                        nan_after(steps_per_epoch + 2, models.cal.prior_regularisation))
    run_dir = tmp_path / "nan"
    code = train.main(["configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}", *TINY, "epochs=2"])
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite loss at epoch 1, step 2" in err and "reg=nan" in err and "loss=nan" in err
    assert "last good checkpoint" in err
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["model"].values()
                                       if v.is_floating_point())


def test_nan_steps_can_be_skipped_and_counted(mini_root, tmp_path, monkeypatch):
    import models.cal

    real = models.cal.prior_regularisation
    count = {"n": 0}

    def every_third(*args, **kwargs):
        count["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if count["n"] % 3 == 0 else value

    monkeypatch.setattr(models.cal, "prior_regularisation", every_third)
    run_dir = tmp_path / "skip"
    code = train.main(["configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}", *TINY,
                       "epochs=1", "nonfinite_loss=skip"])
    assert code == 0
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["skipped_steps"] == count["n"] // 3 and record["skipped_steps"] >= 1


def test_test_py_refuses_a_checkpoint_of_another_protocol(known_k_run, tmp_path):
    state = load_checkpoint(known_k_run[0] / "checkpoints" / "last.pt")
    state["config"]["protocol"] = 2  # 13 known classes, but the weights were trained with 19
    save_atomic(state, tmp_path / "mismatch.pt")
    result = run_cli("test.py", "--ckpt", str(tmp_path / "mismatch.pt"))
    assert result.returncode == 2
    assert "19 known" in result.stderr and "protocol 2" in result.stderr and "13 known" in result.stderr


def test_resume_dir_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "empty_run").mkdir()
    result = run_cli("train.py", "--resume", str(tmp_path / "empty_run"))
    assert result.returncode == 2 and "has no checkpoints/last.pt" in result.stderr


def test_crash_with_loader_workers_exits_promptly(mini_root, tmp_path):
    """An unexpected exception in a step, with persistent loader workers
    alive: the process exits with the traceback instead of waiting on the
    workers at interpreter exit (they ignore the SIGTERM that exit sends)."""
    script = (
        "import sys, models.cal, train\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom in a loss term')\n"
        "models.cal.prior_regularisation = boom\n"
        f"sys.exit(train.main(['configs/demo.py', 'dataset_root={mini_root}', 'run_dir={tmp_path / 'r'}', "
        + ", ".join(repr(a) for a in TINY) + ", 'num_workers=2']))\n")
    started = time.time()
    result = run_cli("-c", script, timeout=50)
    assert result.returncode != 0 and "boom in a loss term" in result.stderr
    assert time.time() - started < 45
