"""Folder scan and the prepare command: class folders, warnings, report counts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from dataset import crop_cache
from dataset.folders import labels_by_path, parse_class_index, scan_dataset
from dataset.prepare import main

REPO = Path(__file__).resolve().parents[1]


def _image(path, face=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(skimage.data.astronaut()) if face else Image.new("RGB", (40, 30), (90, 160, 30))
    image.save(path)


def test_parse_class_index():
    assert parse_class_index("0_Real_CelebDF") == 0
    assert parse_class_index("17_Generate_StyleGAN") == 17
    assert parse_class_index("40") == 40
    assert parse_class_index("Real_CelebDF") is None
    assert parse_class_index("17a_x") is None


def test_scan_is_sorted_recursive_and_warns(tmp_path):
    root = tmp_path / "data"
    # Created out of order: the result must not depend on it.
    for rel in ["1_Swap_B/z.png", "1_Swap_B/a.PNG", "0_Real_C/x.jpeg", "0_Real_A/sub/b.jpg", "0_Real_A/a.png",
                "notes/n.png", "0_Real_A/._a.png", "0_Real_A/.hidden/h.png"]:
        _image(root / rel)
    (root / "0_Real_A" / "readme.txt").write_text("not an image")
    (root / "2_Edit_Empty").mkdir()
    (root / "index.csv").write_text("a file at the top level is ignored")
    with pytest.warns(UserWarning) as caught:
        classes = scan_dataset(str(root))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert any("notes" in m and "class index" in m for m in messages)
    assert any("2_Edit_Empty" in m and "no .jpg" in m for m in messages)

    def rel(paths):
        return [os.path.relpath(p, root) for p in paths]

    assert list(classes) == [0, 1, 2]
    assert [(name, rel(paths)) for name, paths in classes[0]] == [
        ("0_Real_A", ["0_Real_A/a.png", "0_Real_A/sub/b.jpg"]), ("0_Real_C", ["0_Real_C/x.jpeg"])]
    assert [(name, rel(paths)) for name, paths in classes[1]] == [("1_Swap_B", ["1_Swap_B/a.PNG", "1_Swap_B/z.png"])]
    assert classes[2] == [("2_Edit_Empty", [])]
    assert sorted(set(labels_by_path(classes).values())) == [0, 1]


@pytest.fixture
def small_tree(tmp_path):
    root = tmp_path / "data"
    _image(root / "0_Real_A" / "face.png", face=True)
    _image(root / "0_Real_A" / "plain.png")
    _image(root / "5_Swap_B" / "plain.jpg")
    (root / "5_Swap_B" / "zero.jpg").write_bytes(b"")
    return root


def test_prepare_report_counts_and_rerun_is_cached(small_tree, tmp_path, capsys, monkeypatch):
    report_path = tmp_path / "report.json"
    main(["--dataset_root", str(small_tree), "--workers", "0", "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["classes"] == {
        "0": {"images": 2, "faces": 1, "no_face": 1, "unreadable": 0, "folders": ["0_Real_A"]},
        "5": {"images": 2, "faces": 0, "no_face": 1, "unreadable": 1, "folders": ["5_Swap_B"]}}
    assert report["total"] == {"images": 4, "faces": 1, "no_face": 2, "unreadable": 1}
    assert report["unreadable"] == [{"path": str(small_tree / "5_Swap_B" / "zero.jpg"),
                                     "reason": "empty file (0 bytes)"}]
    out = capsys.readouterr().out
    assert ["total", "4", "1", "2", "1"] in [line.split() for line in out.splitlines()]
    assert "unreadable: " + str(small_tree / "5_Swap_B" / "zero.jpg") in out

    monkeypatch.setattr(crop_cache, "detect_file", lambda *args: pytest.fail("detected again"))
    main(["--dataset_root", str(small_tree), "--workers", "0"])
    default_report = tmp_path / "owdfa_crop_cache" / "data_report.json"
    assert json.loads(default_report.read_text())["total"] == report["total"]


def test_prepare_runs_as_a_script(small_tree, tmp_path):
    result = subprocess.run([sys.executable, "dataset/prepare.py", "--dataset_root", str(small_tree),
                             "--workers", "0", "--cache_dir", str(tmp_path / "c")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c" / "data.sqlite").is_file() and (tmp_path / "c" / "data_report.json").is_file()


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "data" / "0_Real_A").mkdir(parents=True)
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="no images"):
        main(["--dataset_root", str(tmp_path / "data"), "--workers", "0"])


def test_a_class_table_with_folders_scans_exactly_those(tmp_path):
    root = tmp_path / "data"
    for rel in ["RealFace/Real/CelebDF/b.png", "RealFace/Real/CelebDF/sub/a.png", "IdentitySwap/FSGAN/ForgeryNet/x.png",
                "EntireFaceSyncthesis/PGGAN/ForgeryNIR/not_in_table.png"]:
        _image(root / rel)
    classes = scan_dataset(str(root), {21: "RealFace/Real/CelebDF", 5: "IdentitySwap/FSGAN/ForgeryNet",
                                       7: "ExpressionTransfer/Missing/src"})
    assert [(name, [os.path.relpath(p, root) for p in paths]) for name, paths in classes[21]] == [
        ("RealFace/Real/CelebDF", ["RealFace/Real/CelebDF/b.png", "RealFace/Real/CelebDF/sub/a.png"])]
    assert list(classes) == [5, 7, 21] and classes[7] == [("ExpressionTransfer/Missing/src", [])]
    table = tmp_path / "classes.csv"
    table.write_text("index,family,method,folder\n21,Real,Celeb,RealFace/Real/CelebDF\n"
                     "5,Swap,FSGAN,IdentitySwap/FSGAN/ForgeryNet\n")
    report_path = tmp_path / "report.json"
    main(["--dataset_root", str(root), "--workers", "0", "--report", str(report_path), "--classes_file", str(table)])
    report = json.loads(report_path.read_text())
    assert {k: (v["images"], v["folders"]) for k, v in report["classes"].items()} == {
        "5": (1, ["IdentitySwap/FSGAN/ForgeryNet"]), "21": (2, ["RealFace/Real/CelebDF"])}
