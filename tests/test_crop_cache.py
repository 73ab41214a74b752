"""The crop cache detects each image once, recomputes exactly what changed, recovers from corruption,
reads a complete cache where it cannot write, and serves several processes started together."""
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from dataset import crop_cache
from dataset.crop_cache import CropCache, CropCacheError, class_report, format_report, load_face
from dataset.faces import CropSettings, FaceCropper, FaceRecord
from dataset.image_io import UnreadableImage, read_rgb

REPO = Path(__file__).resolve().parents[1]


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


_FILL_WHEN_TOLD = """
import json, os, sys, time
from dataset import crop_cache
from dataset.crop_cache import CropCache
cache_dir, root, go, mode, *paths = sys.argv[1:]
crop_cache.WRITE_BATCH = 4  # many small commits, interleaved with the other processes'
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
cache = CropCache(cache_dir, root)
found = cache.ensure(paths, progress=False) if mode == "faces" else cache.check_readable(paths, progress=False)
print(json.dumps({path: str(value) for path, value in found.items()}))
"""


def test_concurrent_first_use_of_a_fresh_folder(tmp_path, tree):
    """Six processes, started together on a cache folder that does not exist yet (three detecting
    faces, three checking readability), all succeed with the records one process alone gets."""
    folder = Path(tree[1]).parent
    for i in range(60):
        Image.new("RGB", (24, 24), (i, 2 * i, 3 * i)).save(folder / f"many{i:02d}.png")
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("*.*"))
    cache_dir, go = tmp_path / "new" / "cache", tmp_path / "go"
    children = [subprocess.Popen([sys.executable, "-c", _FILL_WHEN_TOLD, str(cache_dir), str(tmp_path / "data"),
                                  str(go), mode, *paths], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
                for mode in ("faces", "readable") * 3]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()[-2000:]
        go.touch()  # all at once
        results = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            child.kill()
    for child, (out, err) in zip(children, results):
        assert child.returncode == 0 and out.strip(), err[-2000:]
    faces = {json.dumps(json.loads(out), sort_keys=True) for (out, _), mode in zip(results, ("faces", "readable") * 3)
             if mode == "faces"}
    readable = {out for (out, _), mode in zip(results, ("faces", "readable") * 3) if mode == "readable"}
    alone = CropCache(tmp_path / "alone", tmp_path / "data")
    assert faces == {json.dumps({p: str(r) for p, r in alone.ensure(paths, progress=False).items()}, sort_keys=True)}
    assert len(readable) == 1 and json.loads(readable.pop()) == alone.check_readable(paths, progress=False)
    with closing(sqlite3.connect(cache_dir / "data.sqlite")) as db:  # every entry stored once per settings key
        assert db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 2 * len(paths)


@pytest.mark.parametrize("held", ["write", "set-up"])
def test_a_busy_cache_stops_face_detection_but_not_the_readability_check(tmp_path, tree, monkeypatch, caplog, held):
    """Another process holds the cache (a write transaction, or the set-up lock) for longer than
    anyone waits: face detection names the cache busy; crop_face=false's check goes on without it."""
    monkeypatch.setattr(crop_cache, "LOCK_WAIT", 0.3)
    monkeypatch.setattr(crop_cache, "OPTIONAL_WAIT", 0.2)
    caplog.set_level("INFO", logger="dataset.crop_cache")
    expected = CropCache(tmp_path / "other", tmp_path / "data").check_readable(tree, progress=False)
    cache = _cache(tmp_path)
    cache.check_readable(tree[:1], progress=False)  # the database exists, holding one entry
    if held == "write":
        holder = sqlite3.connect(cache.db_path)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = open(f"{cache.db_path}.lock")
        fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert _cache(tmp_path).check_readable(tree, progress=False) == expected
        note = {"write": "stays busy (database is locked): the rest of the check is not cached",
                "set-up": "the image check runs without the crop cache: the crop cache"}[held]
        assert note in caplog.text
        with pytest.raises(CropCacheError, match=r"the crop cache .*data\.sqlite is busy \(.*\): another process "
                                                 r"held it for more than 0 s; run again once it is done"):
            _cache(tmp_path).ensure(tree, progress=False)
    finally:
        holder.close()
    assert _cache(tmp_path).check_readable(tree, progress=False) == expected


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


def _corrupt_truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt_header(data: bytes) -> bytes:
    return b"garbage!" * 12 + data[96:]  # the 100-byte header, minus its last 4 bytes


def _corrupt_pages(data: bytes) -> bytes:
    out, page = bytearray(data), 4096
    noise = np.random.default_rng(0).integers(0, 256, page, dtype=np.uint8).tobytes()
    for start in range(page, len(out) - page + 1, page):  # every page but the first: cells and pointers
        out[start + 8:start + 1000] = noise[:992]
    return bytes(out)


@pytest.fixture
def filled_cache(tmp_path, tree):
    """A closed cache holding the records of ``tree`` plus 3000 rows of other settings (a multi-page file)."""
    records = _cache(tmp_path).ensure(tree, progress=False)
    cache = _cache(tmp_path)
    with closing(sqlite3.connect(cache.db_path)) as db, db:
        db.executemany("INSERT INTO faces VALUES (?, 'other', 1, 1, '{}')", [(f"x/{i}.png",) for i in range(3000)])
    assert not list(cache.cache_dir.glob("*-wal")), "closing the last connection checkpoints the WAL"
    return cache, records


@pytest.mark.parametrize("corrupt", [_corrupt_truncated, _corrupt_header, _corrupt_pages])
def test_corrupt_database_is_set_aside_and_rebuilt(tmp_path, tree, filled_cache, detections, corrupt, caplog):
    cache, records = filled_cache
    cache.db_path.write_bytes(corrupt(cache.db_path.read_bytes()))
    assert _cache(tmp_path).ensure(tree, progress=False) == records
    assert len(detections) == 4  # rebuilt: everything detected again
    [aside] = cache.cache_dir.glob("data.sqlite.corrupt-*")
    assert aside.stat().st_size > 0
    assert any("was corrupt" in r.message and r.levelname == "WARNING" for r in caplog.records)
    assert "writable" not in caplog.text
    detections.clear()
    assert _cache(tmp_path).ensure(tree, progress=False) == records and detections == []


def test_complete_cache_is_used_read_only(tmp_path, tree, filled_cache, detections):
    cache, records = filled_cache
    before = sorted((p.name, p.stat().st_mtime_ns) for p in cache.cache_dir.iterdir())
    ro = CropCache(cache.cache_dir, tmp_path / "data", read_only=True)
    assert ro.ensure(tree, progress=False) == records
    assert detections == []
    assert sorted((p.name, p.stat().st_mtime_ns) for p in cache.cache_dir.iterdir()) == before  # nothing written


def test_incomplete_read_only_cache_names_what_is_missing(tmp_path, tree, filled_cache):
    cache, _ = filled_cache
    extra = os.path.join(os.path.dirname(tree[1]), "new.png")
    Image.new("RGB", (32, 32)).save(extra)
    with pytest.raises(CropCacheError) as err:
        CropCache(cache.cache_dir, tmp_path / "data", read_only=True).ensure(tree + [extra], progress=False)
    message = str(err.value)
    assert "lacks 1 of 5 images" in message and "crop_cache_dir=" in message and "prepare.py" in message
    assert "\n" not in message


def test_cache_that_cannot_be_written_is_read_read_only(tmp_path, tree, filled_cache, monkeypatch):
    """The check a read-only mount triggers (access() is False there, even for root), simulated."""
    cache, records = filled_cache
    monkeypatch.setattr(crop_cache.os, "access", lambda path, mode: False)
    reader = _cache(tmp_path)
    assert reader.ensure(tree, progress=False) == records and reader.read_only


_READ_AS_OTHER_USER = """
import sys
from dataset.crop_cache import CropCache, CropCacheError
cache_dir, root, *paths = sys.argv[1:]
try:
    print(len(CropCache(cache_dir, root).ensure(paths, progress=False)), "records")
except CropCacheError as err:
    print("error:", err)
"""


def _readable_copy(shared: Path) -> Path:
    """The packages the child imports, copied into ``shared/code`` (world-readable): the repository
    itself may sit in a private folder (``mktemp -d`` makes mode 700, as /root is) that the other
    user cannot enter."""
    code = shared / "code"
    for package in ("dataset", "utils"):
        shutil.copytree(REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    for folder, dirs, files in os.walk(code):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return code


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="root without setpriv cannot drop "
                    "write permission (the other read-only tests still run)")
def test_read_only_folder_for_real(tmp_path, tree, filled_cache):
    """A user without write permission reads a complete cache and names what an incomplete one lacks."""
    cache, _ = filled_cache
    shared = Path(tempfile.mkdtemp(prefix="ro_cache_"))  # pytest's tmp_path is private to this user
    try:
        shared.chmod(0o755)
        code = _readable_copy(shared)
        shutil.copytree(tmp_path / "data", shared / "data")
        shutil.copytree(cache.cache_dir, shared / "cache")
        for folder in (shared / "data", shared / "data" / "0_Real_A", shared / "data" / "1_Swap_B"):
            folder.chmod(0o755)
        (shared / "cache").chmod(0o555)
        (shared / "cache" / "data.sqlite").chmod(0o444)
        paths = [str(shared / "data" / Path(p).relative_to(tmp_path / "data")) for p in tree]
        as_other = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] if os.geteuid() == 0 else []

        def run(*args):
            return subprocess.run([*as_other, sys.executable, *args], capture_output=True, text=True, timeout=120,
                                  cwd=shared, env={**os.environ, "PYTHONPATH": str(code)})

        probe = run("-c", "import dataset.crop_cache")
        if probe.returncode:  # e.g. the interpreter or its packages live where that user cannot read
            pytest.skip(f"the child cannot import dataset.crop_cache from a readable copy as user "
                        f"{'65534' if as_other else os.getuid()}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
        before = sorted(p.name for p in (shared / "cache").iterdir())
        result = run("-c", _READ_AS_OTHER_USER, str(shared / "cache"), str(shared / "data"), *paths)
        assert result.stdout.strip() == "4 records", result.stderr[-2000:]
        result = run("-c", _READ_AS_OTHER_USER, str(shared / "cache"), str(shared / "data"), *paths,
                     str(shared / "data" / "0_Real_A" / "missing.png"))
        assert "lacks 1 of 5 images" in result.stdout, result.stderr[-2000:]
        assert sorted(p.name for p in (shared / "cache").iterdir()) == before, "nothing written"
    finally:
        (shared / "cache").chmod(0o755)
        shutil.rmtree(shared)


def test_full_disk_is_named_with_the_free_space(tmp_path, tree, monkeypatch):
    connect = CropCache._connect_writable

    def small_disk(self, wait):  # the database may not grow by a single page: SQLite's own SQLITE_FULL
        db = connect(self, wait)
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        return db

    monkeypatch.setattr(CropCache, "_connect_writable", small_disk)
    monkeypatch.setattr(crop_cache, "_FaceTask", lambda settings: lambda path: path * 200)  # records of 12 KB
    with pytest.raises(CropCacheError, match=r"disk full writing .*data\.sqlite: .* free on /"):
        _cache(tmp_path).ensure(tree, progress=False)
