"""Loading a shared model checks what it is given: an edited export config.json, tampered
weights or header, an edited checkpoint, and a bad output path (a link to a device) fail in
one line before any work; an export never overwrites other files and an interrupted one is
refused; predictions keep odd file names and never hand a spreadsheet a formula."""
import csv
import io
import json
import os
import shutil
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import dataset.owdfa
import export as export_cli
import predict as predict_cli
import scripts.aggregate as aggregate
import test as test_py
from inference.attributor import collect_inputs, input_reader
from inference.loading import load_model_state
from inference.predictions import write_csv
from utils.checkpoint import CheckpointError, load_checkpoint, save_atomic
from utils.config import load_config

ODD = os.fsdecode(b"bad_\xff\xfe.png")


@pytest.fixture(scope="module")
def export_dir(known_k_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("integrity") / "export"
    assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(folder)]) == 0
    return folder


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]), err[-2000:]
    return errors[0]


def tampered(export_dir, tmp_path, edit_info=None, edit_weights=None):
    folder = tmp_path / "tampered"
    shutil.copytree(export_dir, folder)
    if edit_info:
        info = json.loads((folder / "config.json").read_text())
        edit_info(info)
        (folder / "config.json").write_text(json.dumps(info))
    if edit_weights:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
            metadata = handle.metadata()
        weights = load_file(str(folder / "model.safetensors"))
        edit_weights(weights)
        save_file(weights, str(folder / "model.safetensors"), metadata=metadata)
    return folder


def swap_names(info):
    a, b = info["classes"][1], info["classes"][2]
    a["name"], b["name"] = b["name"], a["name"]


def set_weight(name, make):
    def edit(weights):
        weights[name] = make(weights[name])
    return edit


CONFIG_EDITS = {
    "two names swapped": (swap_names, "no longer matches its fingerprint", "label 1: name 'S1 Deepfakes' -> "),
    "num_known changed": (lambda i: i.update(num_known=3), "19 classes are marked known, but num_known=3"),
    "every class real": (lambda i: [c.update(real=True) for c in i["classes"]], "no longer matches its fingerprint",
                         "real False -> True"),
    "valid_prototypes=1000": (lambda i: i.update(valid_prototypes=1000), "valid_prototypes=1000"),
    "no config": (lambda i: i.pop("config"), "lacks the key 'config'"),
    "no classes": (lambda i: i.pop("classes"), "lacks the key 'classes'"),
    "num_known text": (lambda i: i.update(num_known="19"), "num_known is str '19', not an integer"),
    "short class list": (lambda i: i.update(classes=i["classes"][:30]), "lists 30 classes, but num_classes=41"),
    "num_classes=1e6": (lambda i: i.update(num_classes=1_000_000), "num_classes=1000000 is outside [2, 10000]"),
    "image_size=1e9": (lambda i: i["config"].update(image_size=1_000_000_000), "image_size=1000000000 must lie in"),
    "unknown config key": (lambda i: i["config"].update(colour="red"), "unknown config key 'colour'"),
    "abstain threshold text": (lambda i: i["abstain"].update(threshold="0.3"), "abstain lacks or mistypes threshold"),
    "abstain a list": (lambda i: i.update(abstain=[0.3]), "abstain is list [0.3], not an object or null"),
    "abstain threshold NaN": (lambda i: i["abstain"].update(threshold=float("nan")), "abstain has threshold nan",
                              "the threshold is a cosine in [-1, 1]"),
    "abstain accepts 7": (lambda i: i["abstain"].update(accept=7), "accept 7", "accept a share in (0, 1]"),
    "input_std infinite": (lambda i: i["config"].update(input_std=[float("inf"), 0.2, 0.2]),
                           "input_std=(inf, 0.2, 0.2) must be empty (the backbone's) or 3 numbers in [0.001, 1]"),
    "input_mean 255": (lambda i: i["config"].update(input_mean=[255, 0.4, 0.4]), "3 numbers in [0, 1]"),
    "cluster of no class": (lambda i: i["cluster_assignment"].append({"prototype": 20, "label": 999}),
                            "cluster_assignment entry {'prototype': 20, 'label': 999} needs a prototype in [0, 41), "
                            "a label in [0, 41)"),
}
WEIGHT_EDITS = {
    "integer weights": (set_weight("prototypes.weight", lambda t: t.to(torch.int64)),
                        "tensor prototypes.weight is I64[190, 512], expected F32[190, 512]"),
    "NaN weights": (set_weight("neck.weight", lambda t: t * float("nan")), "hold NaN or infinite values"),
    "wrong shape": (set_weight("prototypes.weight", lambda t: t[:30]), "tensor prototypes.weight is F32[30, 512]"),
    "valid=1000": (set_weight("prototypes.valid", lambda t: torch.tensor(1000)), "prototypes.valid=1000 is outside"),
    "missing tensor": (lambda w: w.pop("neck.bias"), "1 tensors missing (e.g. ['neck.bias'])"),
    "negative variance": (set_weight("backbone.bn1.running_var", lambda t: -t),
                          "batch-norm variances are negative (e.g. backbone.bn1.running_var)"),
}


@pytest.mark.parametrize("edit", CONFIG_EDITS)
def test_an_edited_export_config_is_refused_in_one_line(export_dir, tmp_path, edit):
    change, *words = CONFIG_EDITS[edit]
    folder = tampered(export_dir, tmp_path, edit_info=change)
    started = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        load_model_state(str(folder))
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("edit", WEIGHT_EDITS)
def test_tampered_weights_are_refused_in_one_line(export_dir, tmp_path, edit):
    change, words = WEIGHT_EDITS[edit]
    folder = tampered(export_dir, tmp_path, edit_weights=change)
    with pytest.raises(CheckpointError) as err:
        load_model_state(str(folder))
    assert "\n" not in str(err.value) and words in str(err.value), str(err.value)


def test_predict_and_test_refuse_an_edited_class_table_unless_allowed(export_dir, mini_root, tmp_path, capsys):
    folder = tampered(export_dir, tmp_path, edit_info=swap_names)
    image = str(mini_root / "1_Swap_Deepfakes" / "00000.png")
    assert predict_cli.main(["--ckpt", str(folder), image, "--device", "cpu"]) == 2
    assert "--allow_class_change" in one_error(capsys)
    assert test_py.main(["--ckpt", str(folder)]) == 2
    assert "label 1: name 'S1 Deepfakes' -> 'S3 DeepFaceLab'" in one_error(capsys)
    assert predict_cli.main(["--ckpt", str(folder), image, "--device", "cpu", "--allow_class_change"]) == 0


@pytest.mark.parametrize("kind", ["directory", "under a file"])
@pytest.mark.parametrize("tool", ["predict.py", "test.py"])
def test_a_bad_out_fails_before_the_first_image_is_read(known_k_run, mini_root, tmp_path, capsys, monkeypatch,
                                                        kind, tool):
    reads = []
    monkeypatch.setattr(dataset.owdfa, "read_rgb", lambda path: reads.append(path))
    (tmp_path / "file").write_text("x")
    out = tmp_path if kind == "directory" else tmp_path / "file" / "preds.csv"
    if tool == "predict.py":
        code = predict_cli.main(["--ckpt", str(known_k_run[0]), str(mini_root), "--out", str(out)])
    else:
        code = test_py.main(["--ckpt", str(known_k_run[0]), "--save_predictions", str(out)])
    line = one_error(capsys)
    assert code == 2 and str(out) in line and ("is a directory" in line or "cannot be written" in line)
    assert reads == []


@pytest.mark.parametrize("tool", ["predict.py", "test.py"])
def test_an_out_of_another_kind_names_the_csv_it_takes(known_k_run, mini_root, tmp_path, capsys, tool):
    out = tmp_path / "preds.json"
    if tool == "predict.py":
        code = predict_cli.main(["--ckpt", str(known_k_run[0]), str(mini_root), "--out", str(out)])
    else:
        code = test_py.main(["--ckpt", str(known_k_run[0]), "--save_predictions", str(out)])
    line = one_error(capsys)
    assert code == 2 and str(out) in line and "takes a .csv file" in line and str(tmp_path / "preds.csv") in line
    assert not out.exists()


def test_predict_keeps_odd_names_and_skips_a_named_pipe(known_k_run, mini_root, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(mini_root / "1_Swap_Deepfakes" / "00000.png", os.path.join(folder, ODD))
    shutil.copy(mini_root / "1_Swap_Deepfakes" / "00000.png", folder / "plain.png")
    os.mkfifo(folder / "pipe.png")
    out = tmp_path / "preds.csv"
    started = time.monotonic()
    assert predict_cli.main(["--ckpt", str(known_k_run[0]), str(folder), "--out", str(out), "--device", "cpu"]) == 0
    assert time.monotonic() - started < 60
    with open(out, newline="", encoding="utf-8") as handle:  # valid UTF-8
        rows = {os.path.basename(r["path"]): r for r in csv.DictReader(handle)}
    assert set(rows) == {"bad_\\xff\\xfe.png", "pipe.png", "plain.png"}
    odd, plain = rows["bad_\\xff\\xfe.png"], rows["plain.png"]
    assert odd["error"] == "" and (odd["predicted"], odd["confidence"]) == (plain["predicted"], plain["confidence"])
    assert rows["pipe.png"]["error"] == "a named pipe, not a regular file: skipped"


def test_paths_on_stdin_keep_non_utf8_bytes():
    assert collect_inputs(["-"], io.BytesIO(b"a/" + os.fsencode(ODD) + b"\n\nb.png\n")).paths == [f"a/{ODD}", "b.png"]


def test_csv_cells_starting_a_formula_are_guarded(tmp_path):
    row = {"path": "x.png", "predicted": "=HYPERLINK(\"http://e\")", "nearest": "+x", "confidence": "0.5",
           "similarity": "0.2", "is_real": "false", "top3": "@SUM(A1)", "error": "-1"}
    write_csv([row], tmp_path / "p.csv")
    with open(tmp_path / "p.csv", newline="") as handle:
        written = next(csv.DictReader(handle))
    assert written["predicted"].startswith("'=") and written["top3"] == "'@SUM(A1)" and written["error"] == "'-1"
    assert written["path"] == "x.png" and written["confidence"] == "0.5"


def test_predict_crop_cache_goes_to_the_user_cache_and_names_its_flag(mini_root, tmp_path, monkeypatch):
    from dataset import crop_cache
    from dataset.crop_cache import CropCacheError

    inputs = tmp_path / "shared" / "in"
    shutil.copytree(mini_root / "1_Swap_Deepfakes", inputs)
    paths = sorted(str(p) for p in inputs.iterdir())[:2]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home_cache"))
    cfg = load_config("configs/base.py", ["pretrained=false", "num_workers=0"])  # crop_face=true
    input_reader(cfg, paths, None, 0)
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["in"], "nothing beside the inputs"
    assert list((tmp_path / "home_cache" / "owdfa_cal" / "crop_cache").glob("in-*/in.sqlite"))
    monkeypatch.setattr(crop_cache.os, "access", lambda *args: False)  # a read-only place (we may be root)
    with pytest.raises(CropCacheError) as err:
        input_reader(cfg, paths, str(tmp_path / "elsewhere"), 0)
    assert "--crop_cache_dir DIR" in str(err.value) and "crop_cache_dir=DIR" not in str(err.value)


def test_an_edited_weights_header_is_named_as_such(export_dir, tmp_path):
    folder = tampered(export_dir, tmp_path)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(str(folder / "model.safetensors")), str(folder / "model.safetensors"),
              metadata={**metadata, "class_fingerprint": "0" * 64})
    with pytest.raises(CheckpointError, match=r"the header of .*model\.safetensors records a class table that does "
                                              r"not match its own fingerprint 000000000000: the header was edited"):
        load_model_state(str(folder))


def rename_a_class(state):
    state["classes"][1] = {**state["classes"][1], "name": "X"}


CHECKPOINT_EDITS = {
    "a class renamed": (rename_a_class, "the class table in checkpoint", "no longer matches its fingerprint",
                        "label 1: name 'S1 Deepfakes' -> 'X' (edited since training)", "--allow_class_change"),
    "a class dropped": (lambda s: s["classes"].pop(), "lists 40 classes, but num_classes=41"),
    "abstain threshold NaN": (lambda s: s["abstain"].update(threshold=float("nan")), "abstain has threshold nan"),
    "cluster of no class": (lambda s: s["cluster_assignment"].append({"prototype": 20, "label": 999}),
                            "cluster_assignment entry"),
    "valid prototypes 10**6": (lambda s: s["model"].update({"prototypes.valid": torch.tensor(10**6)}),
                               "prototypes.valid=1000000 is outside [num_known=19, 190 prototype rows]"),
    "a tensor dropped": (lambda s: s["model"].pop("neck.bias"), "1 tensors missing (e.g. ['neck.bias'])"),
    "input_std infinite": (lambda s: s["config"].update(input_std=(float("inf"), 0.2, 0.2)),
                           "its training config is invalid: input_std=(inf, 0.2, 0.2)"),
    "config not a dict": (lambda s: s.update(config="x"), "holds no model and config"),
}


@pytest.mark.parametrize("edit", CHECKPOINT_EDITS)
def test_an_edited_checkpoint_is_refused_by_every_tool(known_k_run, mini_root, tmp_path, capsys, edit):
    change, *words = CHECKPOINT_EDITS[edit]
    state = load_checkpoint(known_k_run[0] / "checkpoints" / "last.pt")
    state["classes"] = [dict(row) for row in state["classes"]]
    change(state)
    save_atomic(state, tmp_path / "last.pt")
    ckpt, image = str(tmp_path / "last.pt"), str(mini_root / "1_Swap_Deepfakes" / "00000.png")
    for main, args in ((predict_cli.main, [image, "--device", "cpu"]), (test_py.main, []),
                       (export_cli.main, ["--out", str(tmp_path / "export")])):
        assert main(["--ckpt", ckpt, *args]) == 2
        line = one_error(capsys)
        assert all(w in line for w in words), line
    assert not (tmp_path / "export").exists(), "an edited checkpoint is not laundered into an export"


def test_export_refuses_a_folder_of_other_files_and_replaces_an_earlier_export(known_k_run, export_dir, tmp_path,
                                                                               capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes\n")
    assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(mine)]) == 2
    line = one_error(capsys)
    assert f"--out {mine} holds files that are not an export (README.md)" in line and "new or empty folder" in line
    assert sorted(p.name for p in mine.iterdir()) == ["README.md"] and (mine / "README.md").read_text() == "my notes\n"
    earlier = shutil.copytree(export_dir, tmp_path / "earlier")
    (earlier / ".gitattributes").write_text("*.safetensors filter=lfs\n")  # e.g. a clone of the hub repo
    assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(earlier), "--checkpoint", "best"]) == 0
    assert sorted(p.name for p in earlier.iterdir()) == [".gitattributes", "README.md", "config.json",
                                                        "model.safetensors"]
    assert json.loads((earlier / "config.json").read_text())["selected_on_test_set"] is True
    load_model_state(str(earlier))


def test_an_interrupted_export_is_refused_and_can_be_written_again(known_k_run, export_dir, tmp_path, monkeypatch):
    import inference.export

    folder = shutil.copytree(export_dir, tmp_path / "export")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference.export, "write_card", crash)  # after the weights and config.json
    with pytest.raises(KeyboardInterrupt):
        inference.export.export_checkpoint(known_k_run[0] / "checkpoints" / "best.pt", folder)
    with pytest.raises(CheckpointError, match="was interrupted while it was written"):
        load_model_state(str(folder))
    monkeypatch.undo()
    assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(folder)]) == 0
    load_model_state(str(folder))


def test_predict_from_a_read_only_export_writes_nothing_there(export_dir, mini_root, tmp_path):
    folder = shutil.copytree(export_dir, tmp_path / "export")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert predict_cli.main(["--ckpt", str(folder), str(mini_root / "35_Generate_PixArt"), "--device", "cpu",
                                 "--out", str(tmp_path / "preds.csv")]) == 0
        assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("tool", ["predict.py", "test.py", "aggregate.py"])
def test_an_out_linking_to_a_device_is_refused_and_a_link_to_a_file_written_through(known_k_run, mini_root,
                                                                                     tmp_path, capsys, tool):
    suffix = {"predict.py": ".csv", "test.py": ".json", "aggregate.py": ".md"}[tool]

    def run(out):
        if tool == "predict.py":
            return predict_cli.main(["--ckpt", str(known_k_run[0]), str(mini_root / "35_Generate_PixArt"),
                                     "--device", "cpu", "--out", str(out)])
        if tool == "test.py":
            return test_py.main(["--ckpt", str(known_k_run[0]), "--out", str(out)])
        return aggregate.main([str(known_k_run[0]), "--out", str(out)])

    full = tmp_path / f"full{suffix}"
    full.symlink_to("/dev/full")
    assert run(full) == 2
    assert f"--out {full} links to /dev/full, which is a character device, not a regular file" in one_error(capsys)
    target, link = tmp_path / "kept" / f"target{suffix}", tmp_path / f"link{suffix}"
    target.parent.mkdir()
    target.write_text("old")
    link.symlink_to(target)
    assert run(link) == 0
    assert link.is_symlink() and target.read_text() != "old" and not list(tmp_path.glob(".*tmp*"))


def test_a_full_disk_while_writing_an_output_is_one_line(known_k_run, tmp_path, capsys, monkeypatch):
    import errno
    from pathlib import Path

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "metrics.json"
    assert test_py.main(["--ckpt", str(known_k_run[0]), "--out", str(out)]) == 2
    assert f"disk full writing {out}: " in one_error(capsys) and not out.exists()
