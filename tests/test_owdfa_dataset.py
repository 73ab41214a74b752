"""Training and test datasets: seeded views; unreadable images are left out of
the split up front, and images that turn unreadable after it are replaced
(training) or left out (test), and counted."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli
from PIL import Image

from dataset import crop_cache
from dataset.folders import scan_dataset
from dataset.owdfa import EvalSet, ImageReader, TrainSet, build_data
from dataset.split import SplitSpec, make_split
from utils.config import load_config


def write_images(folder, n, value):
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        ramp = np.linspace(0, 40, 20, dtype=np.uint8)[None, :, None]  # asymmetric, so flips show
        Image.fromarray(np.broadcast_to(ramp + value + i, (20, 20, 3)).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_views_depend_only_on_the_draw(tmp_path):
    paths = write_images(tmp_path / "a", 4, 10)
    data = TrainSet(paths, np.zeros(4, int), np.ones(4, bool), ImageReader(), image_size=16, seed=3)
    first, again, other = data[(1, 0, 7)], data[(1, 0, 7)], data[(1, 0, 8)]
    assert first["weak"].dtype == torch.uint8 and first["weak"].shape == (3, 16, 16)
    assert torch.equal(first["weak"], again["weak"]) and torch.equal(first["strong"], again["strong"])
    assert first["label"] == 0 and first["labelled"] and first["replaced"] == 0
    data_seed = TrainSet(paths, np.zeros(4, int), np.ones(4, bool), ImageReader(), image_size=16, seed=4)
    views = [torch.cat([d["weak"], d["strong"]]) for d in (first, other, data_seed[(1, 0, 7)])]
    assert not (torch.equal(views[0], views[1]) and torch.equal(views[0], views[2]))


def test_unreadable_training_image_is_replaced_by_its_class(tmp_path):
    paths = write_images(tmp_path / "a", 3, 10) + write_images(tmp_path / "b", 3, 200)
    labels = np.array([0, 0, 0, 1, 1, 1])
    data = TrainSet(paths, labels, np.array([True] * 3 + [False] * 3), ImageReader(), image_size=16, seed=0)
    with open(paths[4], "wb") as handle:
        handle.write(b"not an image")
    item = data[(4, 0, 0)]
    assert item["replaced"] == 1 and item["label"] == -1, "unlabelled rows hide their label"
    assert item["weak"].float().mean() > 150, "the replacement comes from class 1 (bright images)"


def test_unreadable_test_image_is_marked_invalid(tmp_path):
    paths = write_images(tmp_path / "a", 2, 10)
    paths[1] = str(tmp_path / "missing.png")
    data = EvalSet(paths, np.array([0, 0]), ImageReader(), image_size=16)
    assert data[0]["valid"] and not data[1]["valid"]


def _break(paths, keep_stamp=False):
    """Make image files unreadable; ``keep_stamp``: same size and mtime, as silent bit rot would."""
    for path in paths:
        st = path.stat()
        data = b"\x89PNG broken"
        path.write_bytes(data.ljust(st.st_size, b"\0") if keep_stamp else data)
        if keep_stamp:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_whole_images_unreadable_up_front_are_left_out_once(mini_root, tmp_path, monkeypatch):
    """crop_face=false: the split is checked once, before training; the check is cached."""
    root = tmp_path / "data"
    shutil.copytree(mini_root, root)
    broken = sorted((root / "2_Swap_FaceSwap").iterdir())[:3]
    _break(broken[:2])
    broken[2].write_bytes(broken[2].read_bytes()[:60])  # a truncated PNG: its header still reads
    cfg = load_config("configs/demo.py", [*TINY, f"dataset_root={root}", "crop_face=false"])
    data = build_data(cfg)
    assert not {str(p) for p in broken} & set(data.split.train_paths + data.split.test_paths)
    assert data.crop_report is None and "3 unreadable images left out of the split" in data.split.notes[-1]

    monkeypatch.setattr(crop_cache, "check_file", lambda path: pytest.fail(f"{path} checked again"))
    again = build_data(cfg)
    assert again.split.train_paths == data.split.train_paths and again.split.test_paths == data.split.test_paths


def test_training_counts_unreadable_images(mini_root, tmp_path):
    """Unreadable before the run: left out of the split and logged; turned unreadable after the check
    (same size and mtime, so the cache cannot tell): replaced in training, left out of the metrics."""
    root = tmp_path / "data"
    shutil.copytree(mini_root, root)
    cfg = load_config("configs/demo.py", [*TINY, f"dataset_root={root}"])
    build_data(cfg)  # fills the image check
    _break(sorted((root / "3_Swap_DeepFaceLab").iterdir())[:2], keep_stamp=True)
    broken = sorted((root / "2_Swap_FaceSwap").iterdir())[:4]
    _break(broken)
    test_paths = make_split(scan_dataset(str(root)), SplitSpec.from_config(cfg), str(root)).test_paths
    run_dir = tmp_path / "run"
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={root}", f"run_dir={run_dir}", *TINY,
                     "epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["replaced_images"] + record["unreadable_test_images"] > 0
    # test images: 12 - floor(9.6) = 3 per forgery class, 24 - floor(19.2) = 5 real
    dropped_from_test = len({str(p) for p in broken} & set(test_paths))
    assert record["num_test"] + record["unreadable_test_images"] == 40 * 3 + 5 - dropped_from_test
    log_text = (run_dir / "log.txt").read_text()
    assert "4 unreadable images left out of the split" in log_text
    assert "unreadable training image" in log_text or "unreadable test image" in log_text
