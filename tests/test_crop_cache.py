"""The crop cache detects each image once and recomputes exactly what changed."""
import os

import numpy as np
import pytest
import skimage.data
from PIL import Image

from dataset import crop_cache
from dataset.crop_cache import CropCache, class_report, format_report, load_face
from dataset.faces import CropSettings, FaceCropper, FaceRecord
from dataset.image_io import UnreadableImage, read_rgb


@pytest.fixture
def tree(tmp_path):
    """data/0_Real_A/{face.png, plain1.png, plain2.png}, data/1_Swap_B/broken.jpg; returns their paths."""
    real, fake = tmp_path / "data" / "0_Real_A", tmp_path / "data" / "1_Swap_B"
    real.mkdir(parents=True)
    fake.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(real / "face.png")
    for i in (1, 2):
        Image.new("RGB", (64, 48), (40 * i, 90, 200)).save(real / f"plain{i}.png")
    (fake / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return [str(p) for p in (real / "face.png", real / "plain1.png", real / "plain2.png", fake / "broken.jpg")]


@pytest.fixture
def detections(monkeypatch):
    """Paths detected (in this process) since the test started."""
    calls = []
    original = crop_cache.detect_file

    def counting(path, cropper):
        calls.append(os.path.basename(path))
        return original(path, cropper)

    monkeypatch.setattr(crop_cache, "detect_file", counting)
    return calls


def _cache(tmp_path, **settings):
    return CropCache(tmp_path / "cache", tmp_path / "data", CropSettings(**settings))


def test_records_and_second_run_is_all_cached(tmp_path, tree, detections):
    records = _cache(tmp_path).ensure(tree, progress=False)
    assert list(records) == tree
    assert [r.status for r in records.values()] == ["face", "no_face", "no_face", "unreadable"]
    assert records[tree[3]].reason.startswith("truncated or corrupt")
    assert len(detections) == 4
    assert _cache(tmp_path).ensure(tree, progress=False) == records
    assert len(detections) == 4  # nothing detected again


def test_touched_image_is_recomputed_alone(tmp_path, tree, detections):
    _cache(tmp_path).ensure(tree, progress=False)
    detections.clear()
    st = os.stat(tree[1])
    os.utime(tree[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _cache(tmp_path).ensure(tree, progress=False)
    assert detections == ["plain1.png"]


def test_new_margin_recomputes_and_old_entries_stay(tmp_path, tree, detections):
    first = _cache(tmp_path).ensure(tree, progress=False)
    detections.clear()
    wider = _cache(tmp_path, margin=1.5).ensure(tree, progress=False)
    assert len(detections) == 4
    x0, y0, x1, y1 = first[tree[0]].box
    wx0, wy0, wx1, wy1 = wider[tree[0]].box
    assert wx0 < x0 and wy0 < y0 and wx1 > x1 and wy1 > y1
    detections.clear()
    assert _cache(tmp_path).ensure(tree, progress=False) == first
    assert detections == []


def test_cached_crop_equals_a_fresh_crop(tmp_path, tree):
    cropper = FaceCropper()
    _cache(tmp_path).ensure(tree, progress=False)
    record = _cache(tmp_path).ensure(tree[:1], progress=False)[tree[0]]  # read back from the database
    image = read_rgb(tree[0])
    fresh = cropper.crop(image, cropper.detect(image))
    np.testing.assert_array_equal(load_face(tree[0], record, cropper), fresh)
    with pytest.raises(UnreadableImage):
        load_face(tree[3], FaceRecord("unreadable", reason="x"), cropper)


def test_worker_processes_give_the_same_records(tmp_path, tree):
    in_process = _cache(tmp_path).ensure(tree, progress=False)
    pooled = CropCache(tmp_path / "cache2", tmp_path / "data", CropSettings()).ensure(tree, workers=2, progress=False)
    assert pooled == in_process


def test_interrupted_run_keeps_finished_work(tmp_path, tree, monkeypatch):
    monkeypatch.setattr(crop_cache, "WRITE_BATCH", 1)
    original, seen = crop_cache.detect_file, []

    def detect(path, cropper):
        seen.append(os.path.basename(path))
        if len(seen) == 4:  # interrupted on the last image of the first run
            raise KeyboardInterrupt
        return original(path, cropper)

    monkeypatch.setattr(crop_cache, "detect_file", detect)
    with pytest.raises(KeyboardInterrupt):
        _cache(tmp_path).ensure(tree, progress=False)
    _cache(tmp_path).ensure(tree, progress=False)
    assert seen == ["face.png", "plain1.png", "plain2.png", "broken.jpg", "broken.jpg"]


def test_missing_file_is_recomputed_once_it_appears(tmp_path, tree, detections):
    missing = os.path.join(os.path.dirname(tree[1]), "later.png")
    assert _cache(tmp_path).ensure([missing], progress=False)[missing].reason == "missing file"
    Image.new("RGB", (32, 32)).save(missing)
    assert _cache(tmp_path).ensure([missing], progress=False)[missing].status == "no_face"
    assert detections == ["later.png", "later.png"]


def test_paths_outside_the_root_and_default_folder(tmp_path, tree):
    with pytest.raises(ValueError, match="not under the dataset root"):
        _cache(tmp_path).ensure([str(tmp_path / "elsewhere.png")], progress=False)
    assert CropCache(None, tmp_path / "data").db_path == tmp_path / "owdfa_crop_cache" / "data.sqlite"


def test_class_report(tmp_path, tree):
    records = _cache(tmp_path).ensure(tree, progress=False)
    report = class_report(records, {tree[0]: 0, tree[1]: 0, tree[2]: 0, tree[3]: 1})
    assert report["classes"] == {0: {"images": 3, "faces": 1, "no_face": 2, "unreadable": 0},
                                 1: {"images": 1, "faces": 0, "no_face": 0, "unreadable": 1}}
    assert report["total"] == {"images": 4, "faces": 1, "no_face": 2, "unreadable": 1}
    assert [u["path"] for u in report["unreadable"]] == [tree[3]]
    assert format_report(report).splitlines()[-1].split() == ["total", "4", "1", "2", "1"]
