"""A custom class table end to end: 7 classes with non-contiguous indices, 3 known,
unknown K (DPP), test.py, plots; a folder the table lacks is warned about with its count."""
import json
import shutil

import numpy as np
import pytest
from conftest import TINY, run_cli

import test as test_py
from utils.checkpoint import load_checkpoint, save_atomic

# new index, code, family, method <- folder(s) of the mini dataset providing the images
CLASSES = [(0, "REAL", "Real", "Camera", ["0_Real_CelebDF", "0_Real_FFHQ", "0_Real_FFpp"]),
           (3, "A", "Swap", "Alpha", ["1_Swap_Deepfakes"]), (5, "B", "Swap", "Beta", ["2_Swap_FaceSwap"]),
           (8, "C", "Reenact", "Gamma", ["6_Reenact_Face2Face"]), (9, "D", "Edit", "Delta", ["11_Edit_MaskGAN"]),
           (12, "E", "Generate", "Eps", ["16_Generate_StyleGAN2"]), (20, "F", "Generate", "Zeta", ["32_Generate_StyleGAN-XL"])]
KNOWN = (0, 3, 8)


@pytest.fixture(scope="module")
def custom_run(mini_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("custom")
    root = base / "data"
    for index, _, family, method, sources in CLASSES:
        for n, source in enumerate(sources):
            shutil.copytree(mini_root / source, root / f"{index}_{family}_{method}{n or ''}")
    shutil.copytree(mini_root / "40_Reenact_OneShot", root / "41_Swap_NotInTable")
    table = base / "my_classes.csv"
    table.write_text("index,code,family,method\n" + "".join(f"{i},{c},{f},{m}\n" for i, c, f, m, _ in CLASSES))
    run_dir = base / "run"
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={root}", f"run_dir={run_dir}", f"classes_file={table}",
                     "known_classes=" + ",".join(map(str, KNOWN)), "unknown_k=true", "cal_novel_prototypes=paper", "epochs=2", "cal_pseudo_start=1",
                     *TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result


def test_trains_with_its_own_label_space(custom_run):
    run_dir, result = custom_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["k_novel_true"] == 4
    assert all(r["k_novel_estimate"] == r["valid_prototypes"] - 3 for r in records)
    assert records[0]["valid_prototypes"] <= 30  # 10 prototypes per known class, pruned
    assert "my_classes.csv known 0,3,8: 3 known, 4 novel classes" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["num_known"], summary["num_classes"]) == (3, 7)
    outputs = np.load(run_dir / "test_outputs.npz")
    assert list(outputs["names"]) == ["REAL Camera", "A Alpha", "C Gamma", "B Beta", "D Delta", "E Eps", "F Zeta"]
    assert set(outputs["label"]) == set(range(7))
    for name in ("curves.png", "k_estimate.png", "confidence.png", "tsne.png"):
        assert (run_dir / name).is_file(), name


def test_unmatched_folder_is_warned_once_with_its_count(custom_run):
    _, result = custom_run
    assert (result.stdout + result.stderr).count("41_Swap_NotInTable (12 images)") == 1
    assert "match no class" in result.stdout


def test_test_py_reproduces_the_last_epoch(custom_run, tmp_path):
    run_dir, _ = custom_run
    out = tmp_path / "eval.json"
    result = run_cli("test.py", "--ckpt", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "my_classes.csv known 0,3,8," in result.stdout  # not the unused default protocol
    assert "41_Swap_NotInTable" not in result.stdout + result.stderr  # the training log said it
    evaluated = json.loads(out.read_text())
    recorded = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("all_acc", "known_acc", "novel_acc", "nmi", "ari", "k_novel_estimate", "k_novel_true"):
        assert evaluated[key] == recorded[key], key


def test_a_swapped_class_table_is_refused_naming_the_rows(custom_run, tmp_path, capsys):
    run_dir, _ = custom_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    table = tmp_path / "my_classes.csv"
    shutil.copy(state["config"]["classes_file"], table)
    state["config"]["classes_file"] = str(table)  # the same table under another path
    save_atomic(state, tmp_path / "last.pt")
    preds = tmp_path / "preds.csv"
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt")]) == 0
    capsys.readouterr()
    table.write_text(table.read_text().replace("Alpha", "TMP").replace("Gamma", "Alpha").replace("TMP", "Gamma"))
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt"), "--save_predictions", str(preds)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "label 1: name 'A Alpha' -> 'A Gamma'" in errors[0]
    assert "label 2: name 'C Gamma' -> 'C Alpha'" in errors[0] and "--allow_class_change" in errors[0]
    assert not preds.exists()
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt"), "--save_predictions", str(preds),
                         "--allow_class_change"]) == 0
    assert "evaluating with it (--allow_class_change)" in capsys.readouterr().err


def test_test_py_takes_a_moved_class_table_and_a_batch_size(custom_run, tmp_path, capsys, monkeypatch):
    import dataset.owdfa

    run_dir, _ = custom_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    moved = tmp_path / "tables" / "my_classes.csv"
    moved.parent.mkdir()
    shutil.copy(state["config"]["classes_file"], moved)
    state["config"]["classes_file"] = str(tmp_path / "gone" / "my_classes.csv")  # the table moved since
    save_atomic(state, tmp_path / "last.pt")
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is not there" in error and "--classes_file CSV" in error and "classes_file=" not in error
    batches = []
    loader = dataset.owdfa.eval_loader
    monkeypatch.setattr(dataset.owdfa, "eval_loader", lambda data, cfg, **kw: batches.append(cfg.test_batch_size)
                        or loader(data, cfg, **kw))
    out = tmp_path / "eval.json"
    assert test_py.main(["--ckpt", str(tmp_path / "last.pt"), "--classes_file", str(moved), "--batch_size", "5",
                         "--out", str(out)]) == 0
    assert batches == [5] and json.loads(out.read_text())["label_space"] == "my_classes.csv known 0,3,8"


@pytest.mark.parametrize("flag, name, message", [("--out", "metrics.csv", "takes a .json file"),
                                                 ("--save_predictions", "preds.json", "takes a .csv file")])
def test_test_py_outputs_must_have_their_kind(tmp_path, capsys, flag, name, message):
    assert test_py.main(["--ckpt", str(tmp_path / "missing.pt"), flag, str(tmp_path / name)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and message in error and f"e.g. {flag} " in error
