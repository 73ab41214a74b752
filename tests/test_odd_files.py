"""Files a shared data set holds besides images: named pipes, sockets, symlink loops and
file names that are not valid UTF-8. Each is skipped with its reason or kept under its own name."""
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from dataset.crop_cache import CropCache
from dataset.folders import scan_dataset
from dataset.image_io import UnreadableImage, read_rgb
from dataset.split_file import read_split_json
from utils.config import load_config
from utils.text import csv_cell, printable

ODD = os.fsdecode(b"bad_\xff\xfe.png")  # how os.listdir gives the name b"bad_\xff\xfe.png"


def _reason(path):
    with pytest.raises(UnreadableImage) as err:
        read_rgb(path)
    return err.value.reason


def _png(path):
    Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8)).save(path)


def test_a_named_pipe_is_skipped_within_a_second(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    result = {}

    def read():
        started = time.monotonic()
        result["reason"] = _reason(fifo)
        result["seconds"] = time.monotonic() - started

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the open() so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a named pipe blocked")
    assert result["seconds"] < 1 and result["reason"] == "a named pipe, not a regular file: skipped"


def test_a_socket_and_a_device_are_skipped(tmp_path):
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.png"))
        assert _reason(tmp_path / "s.png") == "a socket, not a regular file: skipped"
    assert _reason("/dev/null") == "a character device, not a regular file: skipped"


def test_symlink_loops_are_named_as_such(tmp_path):
    (tmp_path / "self.png").symlink_to("self.png")
    assert _reason(tmp_path / "self.png").startswith("symbolic link loop")
    root = tmp_path / "data"
    for name in ("0_Real_A", "1_Swap_B"):
        (root / name / "sub").mkdir(parents=True)
        _png(root / name / "sub" / "a.png")
    (root / "0_Real_A" / "sub" / "up").symlink_to("..", target_is_directory=True)
    with pytest.warns(UserWarning, match="symbolic link loop"):
        scan = scan_dataset(str(root))
    assert [os.path.relpath(p, root) for p in scan[0][0][1]] == [os.path.join("0_Real_A", "sub", "a.png")]


def test_crop_cache_keeps_a_non_utf8_name_and_finds_it_again(tmp_path):
    root = tmp_path / "data"
    (root / "0_Real_A").mkdir(parents=True)
    odd, plain = os.path.join(root, "0_Real_A", ODD), str(root / "0_Real_A" / "plain.png")
    _png(odd)
    _png(plain)
    os.mkfifo(root / "0_Real_A" / "pipe.png")
    paths = [odd, plain, str(root / "0_Real_A" / "pipe.png")]
    found = CropCache(tmp_path / "cache", root).check_readable(paths, progress=False)
    assert found == {odd: "", plain: "", paths[2]: "a named pipe, not a regular file: skipped"}
    again = CropCache(tmp_path / "cache", root, read_only=True).check_readable(paths, progress=False)
    assert again == found  # read-only: every entry, the odd name included, was stored


def test_a_non_utf8_name_goes_into_the_split_and_is_read(mini_root, tmp_path):
    from dataset.owdfa import build_data

    root = tmp_path / "data"
    shutil.copytree(mini_root, root)
    shutil.copy(root / "1_Swap_Deepfakes" / "00000.png", os.path.join(root, "1_Swap_Deepfakes", ODD))
    os.mkfifo(root / "1_Swap_Deepfakes" / "pipe.png")
    cfg = load_config("configs/demo.py", [f"dataset_root={root}", f"crop_cache_dir={tmp_path / 'cache'}",
                                          "image_size=32", "budget_real=24", "budget_known=13",
                                          "budget_novel=13", "num_workers=0"])
    data = build_data(cfg)
    paths = data.split.train_paths + data.split.test_paths
    odd = os.path.join(root, "1_Swap_Deepfakes", ODD)
    assert odd in paths and not any(p.endswith("pipe.png") for p in paths)
    assert data.record.left_out == ["1_Swap_Deepfakes/pipe.png"]
    data.record.write(tmp_path / "split.json")  # valid JSON, the name kept exactly
    assert f"1_Swap_Deepfakes/{ODD}" in {r.path for r in read_split_json(tmp_path / "split.json").images}
    if odd in data.split.train_paths:
        item = data.train_set[(data.split.train_paths.index(odd), 0, 0)]
        assert item["replaced"] == 0
    else:
        item = data.test_set[data.split.test_paths.index(odd)]
        assert item["valid"]


def test_printable_and_csv_cells():
    assert printable(ODD) == "bad_\\xff\\xfe.png" and printable("été.png") == "été.png"
    assert [csv_cell(v) for v in ("=1+2", "+x", "-x", "@x", "x=1", 0.5)] == ["'=1+2", "'+x", "'-x", "'@x", "x=1", 0.5]
