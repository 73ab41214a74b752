"""Safe to load, hard to corrupt: a checkpoint never runs code, a changed
dataset or shaping key is refused on resume, one writer per run, split.json
reproduces a split, and a run stopped before its first checkpoint resumes."""
import json
import os
import platform
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, TINY

import test as test_py
import train
from dataset.owdfa import build_data
from dataset.split import DatasetError
from dataset.split_file import ImageRecord, SplitRecord, describe_change
from utils.checkpoint import CheckpointError, load_checkpoint, save_atomic
from trainer.checkpoint import reconcile_best
from utils.config import load_config
from utils.run_dir import RunDirError, RunLock
from utils.seed import rng_state, set_rng_state


class Payload:
    """Unpickling this calls open(marker, "w"): a file appears if code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def one_line_error(capsys) -> str:
    """The one error line, last on stderr (progress bars may precede it)."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines[-3:]
    return errors[0]


def config_only_copy(run_dir, target):
    """A run directory as a kill before the first checkpoint leaves it."""
    (target / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "split.json", "run.json"):
        shutil.copy(run_dir / name, target / name)
    return target


# ------------------------------------------------------------ safe loading
@pytest.mark.parametrize("entry", ["test.py", "--resume"])
def test_a_crafted_checkpoint_runs_no_code(tmp_path, capsys, entry):
    marker = tmp_path / "marker"
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"config": {}, "epoch": 0, "payload": Payload(marker)}, ckpt)
    if entry == "test.py":
        code = test_py.main(["--ckpt", str(ckpt)])
    else:
        code = train.main(["--resume", str(tmp_path / "run")])
    assert code == 2
    assert not marker.exists(), "loading the checkpoint ran code"
    line = one_line_error(capsys)
    assert "names io.open" in line and "--trust_checkpoint" in line


def test_old_pickle_loads_only_when_trusted(known_k_run, tmp_path, capsys):
    run_dir, _ = known_k_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # weights_only: what this code writes
    state["rng"] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    old = tmp_path / "old.pt"
    torch.save(state, old)  # as earlier code stored RNG states: numpy arrays inside
    assert test_py.main(["--ckpt", str(old)]) == 2
    assert "numpy" in one_line_error(capsys)
    trusted = load_checkpoint(old, trust=True)
    set_rng_state(trusted["rng"])  # the old layout still restores
    assert test_py.main(["--ckpt", str(old), "--trust_checkpoint"]) == 0


def test_rng_state_is_plain_and_restores_every_stream(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), torch.rand(2))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.normal(), torch.rand(2))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_saving_a_non_plain_value_names_the_entry(tmp_path):
    with pytest.raises(TypeError, match=r"state\['history'\]\[0\]\['all_acc'\] is a numpy.float64"):
        save_atomic({"history": [{"all_acc": np.float64(0.5)}]}, tmp_path / "last.pt")
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------ split.json, split_file, fingerprint
def mini_config(mini_root, *extra):
    return load_config("configs/demo.py", [*TINY, f"dataset_root={mini_root}", *extra])


def split_rows(data):
    s = data.split
    return (s.train_paths, s.train_orig.tolist(), s.labelled.tolist(), s.test_paths, s.test_orig.tolist())


def table(split):
    return [line for line in split.summary().splitlines() if not line.startswith("note:")]


def test_training_from_a_split_file_reproduces_the_split(mini_root, tmp_path):
    drawn = build_data(mini_config(mini_root, "split_seed=7"))
    drawn.record.write(tmp_path / "split.json")
    reused = build_data(mini_config(mini_root, f"split_file={tmp_path / 'split.json'}"))  # split_seed 2025
    assert split_rows(reused) == split_rows(drawn) and table(reused.split) == table(drawn.split)
    assert reused.record.fingerprint == drawn.record.fingerprint
    assert split_rows(build_data(mini_config(mini_root))) != split_rows(drawn), "the file was used, not a draw"


def test_a_split_file_naming_missing_images_is_refused(mini_root, tmp_path):
    build_data(mini_config(mini_root)).record.write(tmp_path / "split.json")
    doc = json.loads((tmp_path / "split.json").read_text())
    doc["images"] += [{"path": f"3_FaceSwap_X/gone{i}.png", "class": 3, "role": "test"} for i in range(7)]
    (tmp_path / "split.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"7 images of split file .* are missing .*gone0.png.*gone4.png \.\.\."):
        build_data(mini_config(mini_root, f"split_file={tmp_path / 'split.json'}"))


def test_describe_change_counts_each_kind():
    old = SplitRecord(1, {}, [ImageRecord("a", 0, "train-labelled", 1), ImageRecord("b", 0, "train-unlabelled", 1),
                              ImageRecord("c", 3, "test", 1), ImageRecord("d", 3, "test", 1)])
    new = SplitRecord(1, {}, [ImageRecord("a", 0, "test", 1), ImageRecord("b", 0, "train-unlabelled", 1),
                              ImageRecord("c", 3, "test", 9), ImageRecord("e", 3, "test", 1)])
    assert describe_change(old, new) == ("1 added, 1 removed, 1 moved between roles (1 from training to test), "
                                         "1 changed in size")
    assert old.fingerprint != new.fingerprint
    assert SplitRecord(1, {}, old.images[::-1]).fingerprint == old.fingerprint, "order does not matter"


@pytest.fixture(scope="module")
def changed_data_run(known_k_run, tmp_path_factory):
    """A copy of the run and its data; then 3 images deleted, 4 added, 2 corrupted."""
    run_dir, _ = known_k_run
    base = tmp_path_factory.mktemp("changed")
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    data = base / "data"
    shutil.copytree(state["config"]["dataset_root"], data)
    copy = config_only_copy(run_dir, base / "run")
    state["config"]["dataset_root"] = str(data)
    save_atomic(state, copy / "checkpoints" / "last.pt")
    images = sorted(data.glob("*/*.png"))
    for path in images[:3]:
        path.unlink()
    for i, path in enumerate(images[100:104]):
        shutil.copy(path, path.with_name(f"added{i}.png"))
    for path in images[200:202]:
        path.write_bytes(path.read_bytes()[:100])
    return copy


def test_resume_refuses_a_changed_dataset(changed_data_run, capsys):
    before = (changed_data_run / "split.json").read_text()
    started = (changed_data_run / "run.json").read_text()
    assert train.main(["--resume", str(changed_data_run), "epochs=3"]) == 2
    line = one_line_error(capsys)
    for words in ("differs from the one this run was trained on", "added", "removed", "moved between roles",
                  "from training to test", "--allow_split_change"):
        assert words in line, words
    assert (changed_data_run / "split.json").read_text() == before
    # a refused resume is not recorded as a start, nor its changed keys
    assert (changed_data_run / "run.json").read_text() == started
    assert not (changed_data_run / "config_history.jsonl").exists()


def test_test_py_refuses_a_changed_dataset(changed_data_run, capsys):
    ckpt = str(changed_data_run / "checkpoints" / "last.pt")
    assert test_py.main(["--ckpt", ckpt]) == 2
    assert "removed" in one_line_error(capsys)
    assert test_py.main(["--ckpt", ckpt, "--allow_split_change"]) == 0
    assert "evaluating anyway" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "/etc/passwd", "0_Real_CelebDF/./x.png"])
def test_a_split_file_entry_outside_dataset_root_fails_before_the_run_directory(mini_root, tmp_path, capsys,
                                                                                entry):
    build_data(mini_config(mini_root)).record.write(tmp_path / "split.json")
    doc = json.loads((tmp_path / "split.json").read_text())
    doc["images"][0]["path"] = entry
    (tmp_path / "split.json").write_text(json.dumps(doc))
    run = tmp_path / "run"
    assert train.main(["configs/demo.py", *TINY, f"dataset_root={mini_root}", f"run_dir={run}",
                       f"split_file={tmp_path / 'split.json'}"]) == 2
    line = one_line_error(capsys)
    assert "outside dataset_root" in line and repr(entry) in line and not run.exists()


def test_test_py_on_a_run_directory_lists_the_changes(changed_data_run, capsys):
    assert test_py.main(["--ckpt", str(changed_data_run)]) == 2
    line = one_line_error(capsys)
    assert "removed" in line and "added" in line and "cannot be listed" not in line


def test_a_same_size_corruption_is_counted_when_it_fails_to_decode(known_k_run, tmp_path, capsys):
    run_dir, _ = known_k_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    data = tmp_path / "data"
    shutil.copytree(state["config"]["dataset_root"], data)
    state["config"]["dataset_root"] = str(data)
    save_atomic(state, tmp_path / "last.pt")
    out = tmp_path / "metrics.json"
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt"), "--out", str(out)]) == 0  # fills the image check
    before = json.loads(out.read_text())
    tests = [r["path"] for r in json.loads((run_dir / "split.json").read_text())["images"] if r["role"] == "test"]
    for rel, keep_time in zip(tests[:2], (True, False)):
        path = data / rel
        stamp = path.stat()
        path.write_bytes(bytes(stamp.st_size))  # same size, not an image any more
        if keep_time:  # the image check's cache still takes it for readable: found when decoded
            os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    capsys.readouterr()
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt"), "--out", str(out)]) == 0
    after = json.loads(out.read_text())
    assert after["unreadable_test_images"] == 2 and after["num_test"] == before["num_test"] - 2
    assert f"{before['num_test'] - 2} test images (2 more unreadable, left out" in capsys.readouterr().out


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_start_leaves_nothing_that_blocks_its_retry(mini_root, tmp_path, capsys, monkeypatch, existed):
    from trainer.trainer import Trainer

    run, not_a_folder = tmp_path / "run", tmp_path / "file"
    not_a_folder.write_text("")
    if existed:
        run.mkdir()
    args = ["configs/demo.py", *TINY, f"dataset_root={mini_root}", f"run_dir={run}", "epochs=1"]
    assert train.main([*args, f"crop_cache_dir={not_a_folder}"]) == 2  # fails after the run folder is made
    assert "cannot create the crop cache" in one_line_error(capsys)
    assert (sorted(run.iterdir()) == [] if existed else not run.exists())
    monkeypatch.setattr(Trainer, "fit", lambda self, stop: 0)
    assert train.main([*args, f"crop_cache_dir={tmp_path / 'cache'}"]) == 0
    assert (run / "config.json").is_file() and (run / "split.json").is_file()


# ------------------------------------------------------------ one writer
def test_a_second_writer_is_refused_naming_the_holder(known_k_run, tmp_path, capsys):
    run = config_only_copy(known_k_run[0], tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from utils.run_dir import RunLock; lock = RunLock(Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(300)", str(run)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert train.main(["--resume", str(run)]) == 2
        line = one_line_error(capsys)
        assert f"pid {holder.pid} on host {platform.node()}" in line and "being written" in line
        assert not (run / "log.txt").exists()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(run)  # the holder died: its lock is taken over, the record names the new holder
    try:
        assert f"pid {holder.pid}" in lock.previous
        assert (run / ".lock").read_text().startswith(f"pid {os.getpid()} on host ")
        with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
            RunLock(run)  # a second handle, even in this process, is refused
    finally:
        lock.release()
    assert (run / ".lock").read_text() == "", "a clean release leaves no holder"


# ------------------------------------------------------------ resume integrity
@pytest.mark.parametrize("overrides, listed", [
    (["protocol=2"], "protocol (1 -> 2)"),
    (["unknown_k=true", "batch_size=32", "epochs=5"], "unknown_k (False -> True), batch_size (64 -> 32)"),
])
def test_resume_refuses_keys_that_shape_the_run(known_k_run, capsys, overrides, listed):
    run_dir, _ = known_k_run
    before = (run_dir / "metrics.jsonl").read_text()
    assert train.main(["--resume", str(run_dir), *overrides]) == 2
    line = one_line_error(capsys)
    assert listed in line and "start a new run" in line and "epochs" not in line
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_resume_without_a_checkpoint_starts_afresh(known_k_run, tmp_path):
    run_dir, _ = known_k_run
    run = config_only_copy(run_dir, tmp_path / "run")
    leftover = run / "checkpoints" / ".last.pt.tmp-4242"
    leftover.write_bytes(b"half a checkpoint")
    original = (run / "config.json").read_text()
    assert train.main(["--resume", str(run), "epochs=1", "log_every=3"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0]
    assert not leftover.exists()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["split_fingerprint"] == load_checkpoint(run_dir / "checkpoints" / "last.pt")["split_fingerprint"]
    assert state["config"]["epochs"] == 1 and (run / "config.json").read_text() == original
    history = [json.loads(line) for line in (run / "config_history.jsonl").read_text().splitlines()]
    assert [h["changes"] for h in history] == [{"epochs": [2, 1], "log_every": [20, 3]}]
    log = (run / "log.txt").read_text()
    assert "starting it afresh from its config.json" in log and "epochs 2 -> 1" in log
    assert "removed 1 temporary checkpoint file" in log


def test_best_checkpoint_is_rebuilt_after_a_crash_between_the_two_saves(tmp_path):
    weights = torch.arange(4.0)
    save_atomic({"epoch": 1, "weights": weights * 0}, tmp_path / "best.pt")
    last = {"epoch": 3, "position": None, "weights": weights, "best": {"epoch": 3, "all_acc": 0.5}}
    assert "rebuilt it from last.pt" in reconcile_best(tmp_path, last)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 3 and best["selected_on_test_set"] and torch.equal(best["weights"], weights)
    assert reconcile_best(tmp_path, last) is None


def test_a_lost_best_model_is_reported_not_invented(tmp_path):
    save_atomic({"epoch": 1}, tmp_path / "best.pt")
    last = {"epoch": 4, "position": None, "best": {"epoch": 3, "all_acc": 0.5}}
    assert "no longer available" in reconcile_best(tmp_path, last)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1


def test_an_unreadable_checkpoint_names_the_other_one(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="last.pt / best.pt"):
        load_checkpoint(tmp_path / "last.pt")
