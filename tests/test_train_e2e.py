"""End to end on the mini dataset: train.py writes a complete run, test.py
reproduces the recorded numbers, unknown K prunes, bad input fails clearly."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, TINY, run_cli


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_is_complete(known_k_run):
    run_dir, result = known_k_run
    for name in ("config.json", "run.json", "split.json", "log.txt", "metrics.jsonl", "summary.json", "curves.png",
                 "confidence.png", "tsne.png", "test_outputs.npz", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    events = b"".join(p.read_bytes() for p in (run_dir / "tb").iterdir())
    assert b"_hparams_/session_start_info" in events and b"prune_coverage" in events, "config as hparams"
    records = read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [0, 1]
    for key in ("epoch", "lr", "loss", "sup", "reg", "ccr", "gamma_novel", "valid_prototypes", "all_acc",
                "known_acc", "novel_acc", "nmi", "ari", "seconds", "discovery_rate", "known_on_novel_rate",
                "novel_prototypes_used", "novel_prototypes"):
        assert key in records[-1], key
    assert records[-1]["novel_prototypes"] == 22
    assert "acr" in records[1] and "acr" not in records[0], "ACR starts at cal_pseudo_start=1"
    assert records[-1]["valid_prototypes"] == 41
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 2 and config["run_dir"] == str(run_dir)
    assert "commit" in json.loads((run_dir / "run.json").read_text().splitlines()[0])
    assert "final (last epoch 1)" in result.stdout and "known" in result.stdout
    assert "discovery: " in result.stdout and "novel prototypes hold a test image" in result.stdout


def test_report_remakes_the_plots_from_the_run_directory(known_k_run, tmp_path):
    run_dir, _ = known_k_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.png", "checkpoints"))
    result = run_cli("-m", "utils.report", str(copy))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in copy.glob("*.png")} == {"curves.png", "confidence.png", "tsne.png"}
    outputs = np.load(run_dir / "test_outputs.npz")
    last = read_metrics(run_dir)[-1]
    assert outputs["confidence"].mean() == pytest.approx(last["conf_all"])  # the last epoch's predictions
    assert len(outputs["label"]) == last["num_test"]


def test_device_cuda_without_a_gpu_is_one_line(mini_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={tmp_path / 'r'}",
                     "device=cuda")
    assert result.returncode == 2 and result.stderr.startswith("error: device='cuda'") and "device=cpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("env, words", [({"PROTOCOLS": "1 4"}, "unknown protocol '4'"),
                                        ({"SEEDS": "2025 x"}, "seed 'x'")])
def test_train_sh_bad_grid_is_one_line(env, words):
    result = subprocess.run(["bash", "scripts/train.sh"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHON": sys.executable, **env})
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_best_checkpoint_reproduces_its_epoch(known_k_run):
    run_dir, _ = known_k_run
    out = run_dir / "eval_best.json"
    result = run_cli("test.py", "--ckpt", str(run_dir / "checkpoints" / "best.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(out.read_text())
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)  # plain tensors and values only
    recorded = read_metrics(run_dir)[state["epoch"]]
    for key in ("all_acc", "known_acc", "novel_acc", "nmi", "ari", "nmi_novel", "ari_known", "discovery_rate",
                "known_on_novel_rate", "novel_prototypes_used"):
        assert evaluated[key] == recorded[key], key
    assert evaluated["selected_on_test_set"] is True and "selected on the test set" in result.stdout


def test_unknown_k_prunes_and_test_py_agrees(dpp_run, tmp_path):
    records = read_metrics(dpp_run)
    valid = [r["valid_prototypes"] for r in records]
    assert valid[0] < 190 and all(a >= b for a, b in zip(valid, valid[1:])), valid
    assert all(r["k_novel_estimate"] == r["valid_prototypes"] - 19 for r in records)
    assert records[-1]["k_novel_true"] == 22
    for record in records:  # evaluated before pruning too (the release's numbers); equal when nothing pruned
        assert {"pre_update_all_acc", "pre_update_known_acc", "pre_update_novel_acc"} <= set(record)
    unchanged = [r for prev, r in zip(valid, records[1:]) if r["valid_prototypes"] == prev]
    assert all(r["pre_update_all_acc"] == r["all_acc"] for r in unchanged)
    assert (dpp_run / "k_estimate.png").is_file()
    assert "k_posthoc_seconds" in records[-1] and "k_posthoc_seconds" not in records[0]  # the end-of-run check
    assert f"DPP kept {valid[-1] - 19} novel prototypes" in (dpp_run / "log.txt").read_text()
    out = tmp_path / "eval.json"
    evaluated = run_cli("test.py", "--ckpt", str(dpp_run / "checkpoints" / "last.pt"), "--out", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(out.read_text())
    assert metrics["valid_prototypes"] == valid[-1]
    assert metrics["k_novel_estimate"] == valid[-1] - 19 and metrics["k_novel_true"] == 22
    for key in ("all_acc", "known_acc", "novel_acc"):
        assert metrics[key] == records[-1][key], key


@pytest.mark.parametrize("args, words", [
    (["dataset_root=/does/not/exist"], ["dataset_root='/does/not/exist' is not a folder", "get_data.py"]),
    (["protocol=4"], ["protocol=4", "1, 2 or 3"]),
    (["learning_rate=0.1"], ["unknown config key 'learning_rate'"]),
])
def test_bad_input_is_one_clear_line(mini_root, tmp_path, args, words):
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={tmp_path / 'r'}", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "r").exists(), "nothing is created for a bad config"


def test_missing_class_folder_names_the_fix(mini_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mini_root, root)
    shutil.rmtree(root / "33_Generate_SD2.1")
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={root}", f"run_dir={tmp_path / 'r'}", *TINY)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "33_Generate_SD2.1" in line and "get_data.py" in line


def test_existing_run_dir_is_never_overwritten(known_k_run, mini_root):
    run_dir, _ = known_k_run
    before = (run_dir / "metrics.jsonl").read_text()
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}", *TINY)
    assert result.returncode == 2 and "not empty" in result.stderr and "--resume" in result.stderr
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_batch_larger_than_the_training_set_is_refused(mini_root, tmp_path):
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={tmp_path / 'r'}",
                     *TINY, "batch_size=4096")
    assert result.returncode == 2 and "fewer than batch_size=4096" in result.stderr
