"""CPL and SimGCD through the whole tool chain on the mini dataset: they train,
resume exactly, and test.py, export.py and predict.py serve them as they serve CAL."""
import csv
import json

import pytest
from conftest import TINY

import export as export_cli
import predict as predict_cli
import test as test_cli
import train
from inference.attributor import Attributor, collect_inputs

SMALL_HEAD = ["simgcd_hidden_dim=64", "simgcd_projection_dim=32"]  # SimGCD's projector at test size


def metrics_without_time(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module", params=["cpl", "simgcd"])
def baseline(request, mini_root, tmp_path_factory):
    """(method, a 2-epoch run, the same run stopped after epoch 0 and resumed to epoch 1)."""
    base = tmp_path_factory.mktemp(request.param)
    common = ["configs/demo.py", f"dataset_root={mini_root}", *TINY, f"method={request.param}", *SMALL_HEAD]
    whole, resumed = base / "whole", base / "resumed"
    assert train.main([*common, f"run_dir={whole}", "epochs=2"]) == 0
    assert train.main([*common, f"run_dir={resumed}", "epochs=1"]) == 0
    assert train.main(["--resume", str(resumed), "epochs=2"]) == 0
    return request.param, whole, resumed


TERMS = {"cpl": ("ce", "glv", "csp", "entropy", "glv_accepted"),
         "simgcd": ("cls", "distil", "memax", "unsup_con", "sup_con")}


def test_a_resumed_baseline_run_equals_an_uninterrupted_one(baseline):
    method, whole, resumed = baseline
    records = metrics_without_time(whole)
    assert len(records) == 2 and all(term in records[0] for term in TERMS[method])
    assert "acr" not in records[0] and "gamma_novel" not in records[0]  # nothing of CAL's runs
    assert metrics_without_time(resumed) == records
    assert json.loads((whole / "config.json").read_text())["method"] == method


def test_test_py_export_and_predict_serve_the_baseline(baseline, mini_root, tmp_path):
    method, whole, _ = baseline
    out = tmp_path / "metrics.json"
    assert test_cli.main(["--ckpt", str(whole), "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["all_acc"] == metrics_without_time(whole)[-1]["all_acc"]

    folder = tmp_path / "export"
    assert export_cli.main(["--ckpt", str(whole), "--out", str(folder)]) == 0
    assert json.loads((folder / "config.json").read_text())["config"]["method"] == method
    images = collect_inputs([str(mini_root / "35_Generate_PixArt")]).paths
    from_checkpoint = Attributor.load(str(whole / "checkpoints" / "last.pt"), "cpu").predict_paths(images,
                                                                                                  progress=False)
    from_export = Attributor.load(str(folder), "cpu").predict_paths(images, progress=False)
    assert len(from_export) == 12 and from_export == from_checkpoint

    csv_path = tmp_path / "preds.csv"
    assert predict_cli.main(["--ckpt", str(folder), str(mini_root / "35_Generate_PixArt"), "--device", "cpu",
                             "--out", str(csv_path)]) == 0
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and all(r["predicted"] for r in rows)
