"""Training and test datasets: seeded views, and images that turn unreadable
after the split are replaced (training) or left out (test), and counted."""
import json
import shutil

import numpy as np
import torch
from conftest import TINY, run_cli
from PIL import Image

from dataset.owdfa import EvalSet, ImageReader, TrainSet


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


def test_training_counts_images_that_became_unreadable(mini_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mini_root, root)
    broken = sorted((root / "2_Swap_FaceSwap").iterdir())[:4]
    for path in broken:
        path.write_bytes(b"\x89PNG truncated")
    run_dir = tmp_path / "run"
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={root}", f"run_dir={run_dir}", *TINY,
                     "epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["replaced_images"] + record["unreadable_test_images"] > 0
    # test images: 12 - floor(9.6) = 3 per forgery class, 24 - floor(19.2) = 5 real
    assert record["num_test"] + record["unreadable_test_images"] == 40 * 3 + 5
    assert "unreadable" in (run_dir / "log.txt").read_text()
