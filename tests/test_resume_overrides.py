"""Resuming with new optimiser or scheduler values applies them from the next step; keys that
decide which classes the model knows are refused, each with its own one-line message."""
import json
import shutil

import pytest
from conftest import TINY

import train
from dataset.protocols import OWDFA40_FILE
from trainer import trainer as trainer_module
from utils.checkpoint import load_checkpoint


def copy_run(known_k_run, target):
    shutil.copytree(known_k_run[0], target)
    return target


def one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


def test_resumed_schedule_values_are_the_optimisers_at_the_next_step(known_k_run, tmp_path, monkeypatch):
    run = copy_run(known_k_run, tmp_path / "run")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["config"]["lr"] == 1e-3  # 2 epochs done, lr_step 8
    seen = []
    original = trainer_module.Trainer.train_step

    def record(self, batch, epoch, step, stop):
        seen.append((self.optimizer.param_groups[0]["lr"], self.optimizer.param_groups[0]["weight_decay"]))
        return original(self, batch, epoch, step, stop)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", record)
    overrides = ["epochs=3", "lr=5e-4", "weight_decay=0.01", "lr_step=1", "lr_gamma=0.5"]
    assert train.main(["--resume", str(run), *overrides]) == 0
    lr = 5e-4 * 0.5 ** 2  # StepLR's closed form at epoch 2 with the new values
    assert seen[0] == pytest.approx((lr, 0.01)) and len(set(seen)) == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in records] == [1e-3, 1e-3, pytest.approx(lr)]
    assert "written into the optimiser and scheduler; from the next step lr 0.000125" in (run / "log.txt").read_text()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["scheduler"]["step_size"] == 1 and state["scheduler"]["base_lrs"] == [5e-4]


@pytest.mark.parametrize("override, words", [
    ("known_classes=0,1,3", "known_classes (() -> (0, 1, 3)) would change which classes are known"),
    ("protocol=2", "protocol (1 -> 2) would change which classes are known"),
])
def test_resume_refuses_another_known_set(known_k_run, tmp_path, capsys, override, words):
    run = copy_run(known_k_run, tmp_path / "run")
    started = (run / "run.json").read_text()
    assert train.main(["--resume", str(run), override, "--allow_split_change"]) == 2
    line = one_error(capsys)
    assert words in line and "start a new run" in line and "split" not in line
    assert (run / "run.json").read_text() == started and not (run / "config_history.jsonl").exists()


def test_resume_refuses_keys_it_could_not_apply(known_k_run, tmp_path, capsys):
    run = copy_run(known_k_run, tmp_path / "run")
    assert train.main(["--resume", str(run), "gamma=0.5", "epochs=3"]) == 2
    line = one_error(capsys)
    assert "cannot apply cal_gamma (0.95 -> 0.5)" in line and "ACR thresholds" in line and "epochs" not in line
    assert not (run / "config_history.jsonl").exists()


def test_resume_refuses_a_changed_class_table(known_k_run, tmp_path, capsys):
    run = copy_run(known_k_run, tmp_path / "run")
    table = OWDFA40_FILE.read_text()
    same = tmp_path / "same.csv"
    same.write_text(table)  # the same content under another name is the same table
    assert train.resolve_config(train.parse_args(["--resume", str(run), f"classes_file={same}"]))[0].classes_file
    swapped = tmp_path / "swapped.csv"
    swapped.write_text(table.replace("Swap,Deepfakes", "Swap,TMP").replace("Swap,FaceSwap", "Swap,Deepfakes")
                       .replace("Swap,TMP", "Swap,FaceSwap"))
    assert train.main(["--resume", str(run), f"classes_file={swapped}"]) == 2
    line = one_error(capsys)
    assert "label 1: name 'S1 Deepfakes' -> 'S1 FaceSwap'" in line and "restore that file" in line


def test_memory_absurd_settings_fail_before_a_run_directory(mini_root, tmp_path, capsys):
    common = ["configs/demo.py", f"dataset_root={mini_root}", *TINY]
    for override, words in (("image_size=1000000000", "image_size=1000000000 must lie in [1, 4096]"),
                            ("batch_size=100000", "fewer than batch_size=100000"),
                            ("test_batch_size=10000000", "GiB for one batch's inputs alone")):
        run = tmp_path / override.split("=")[0]
        assert train.main([*common, f"run_dir={run}", override]) == 2
        assert words in one_error(capsys) and not run.exists(), override
