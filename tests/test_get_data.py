"""dataset/get_data.py: download (with a local-folder fetcher), extraction, offline failure."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from dataset import get_data
from dataset.get_data import MARKER, PREDICTOR, FetchError, default_predictor_path, extract_all, main

REPO = Path(__file__).resolve().parents[1]
CLASSES = {"1_Swap_Deepfakes": 3, "6_Reenact_Face2Face": 2, "32_Edit_StarGAN": 1}


class LocalFetcher:
    """Stands in for the hub: serves the files of a local folder and records fetches."""

    def __init__(self, src: Path):
        self.src = src
        self.source = str(src)
        self.fetched: list[str] = []

    def list_files(self) -> dict[str, int | None]:
        return {p.relative_to(self.src).as_posix(): p.stat().st_size
                for p in self.src.rglob("*") if p.is_file()}

    def fetch(self, filename: str, dest_dir: Path, force: bool = False) -> Path:
        dest = dest_dir / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.src / filename, dest)
        self.fetched.append(filename)
        return dest


class OfflineFetcher:
    source = "offline"

    def list_files(self):
        raise FetchError("cannot list offline (ConnectError: connection refused)")

    def fetch(self, filename, dest_dir, force=False):
        raise AssertionError("fetch called although listing failed")


def write_zip(path: Path, n_images: int) -> None:
    """A class archive as on the hub: images under the class folder's subfolders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n_images):
            zf.writestr(f"video_{i}/frame_000.png", f"{path.stem} image {i}" * 50)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A folder laid out like the hub repository."""
    src = tmp_path / "remote"
    for name, n in CLASSES.items():
        write_zip(src / "data" / f"{name}.zip", n)
    (src / PREDICTOR).write_bytes(b"landmarks")
    (src / "README.md").write_text("not needed")
    return src


@pytest.fixture
def downloaded(tmp_path: Path, remote: Path) -> Path:
    """A dataset root after a successful download, without extraction."""
    root = tmp_path / "root"
    assert main(["--dataset_root", str(root)], fetcher=LocalFetcher(remote)) == 0
    return root


def extract(root: Path):
    return {r.archive: r for r in extract_all(root / "data", workers=2)}


def test_download_copies_only_the_needed_files(tmp_path, remote):
    fetcher = LocalFetcher(remote)
    root = tmp_path / "root"
    assert main(["--dataset_root", str(root)], fetcher=fetcher) == 0
    assert sorted(fetcher.fetched) == sorted([f"data/{n}.zip" for n in CLASSES] + [PREDICTOR])
    assert (root / PREDICTOR).read_bytes() == b"landmarks"
    assert not (root / "README.md").exists()


def test_second_download_fetches_nothing_and_force_fetches_all(downloaded, remote):
    again = LocalFetcher(remote)
    assert main(["--dataset_root", str(downloaded)], fetcher=again) == 0
    assert again.fetched == []
    forced = LocalFetcher(remote)
    assert main(["--dataset_root", str(downloaded), "--force_download"], fetcher=forced) == 0
    assert len(forced.fetched) == len(CLASSES) + 1


def test_truncated_file_is_fetched_again(downloaded, remote):
    archive = downloaded / "data" / "1_Swap_Deepfakes.zip"
    archive.write_bytes(archive.read_bytes()[:10])
    fetcher = LocalFetcher(remote)
    assert main(["--dataset_root", str(downloaded)], fetcher=fetcher) == 0
    assert fetcher.fetched == ["data/1_Swap_Deepfakes.zip"]
    assert archive.read_bytes() == (remote / "data" / archive.name).read_bytes()


def test_predictor_missing_on_hub_is_copied_from_package(tmp_path, remote):
    (remote / PREDICTOR).unlink()
    root = tmp_path / "root"
    assert main(["--dataset_root", str(root)], fetcher=LocalFetcher(remote)) == 0
    assert (root / PREDICTOR).stat().st_size == default_predictor_path().stat().st_size


def test_extract_creates_class_folders(downloaded, capsys):
    assert main(["--dataset_root", str(downloaded), "--extract"], fetcher=OfflineFetcher()) == 0
    for name, n in CLASSES.items():
        folder = downloaded / "data" / name
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == \
            [f"video_{i}/frame_000.png" for i in range(n)]
        assert (folder / MARKER).is_file()
    assert not list((downloaded / "data").glob(".*"))  # no temporary folders left
    out = capsys.readouterr().out
    assert f"extracted {len(CLASSES)}, skipped 0, failed 0" in out
    assert f"python dataset/prepare.py --dataset_root {downloaded / 'data'}" in out


def test_second_extract_skips_and_changed_archive_is_reextracted(downloaded):
    extract(downloaded)
    assert {r.status for r in extract(downloaded).values()} == {"skipped"}
    archive = downloaded / "data" / "6_Reenact_Face2Face.zip"
    write_zip(archive, 4)
    os.utime(archive, ns=(time.time_ns(), time.time_ns() + 10**9))
    results = extract(downloaded)
    assert results[archive.name].status == "extracted"
    assert {r.status for n, r in results.items() if n != archive.name} == {"skipped"}
    assert len(list((downloaded / "data" / "6_Reenact_Face2Face").rglob("*.png"))) == 4


def test_interrupted_extraction_is_redone(downloaded):
    data = downloaded / "data"
    (data / ".1_Swap_Deepfakes.partial" / "video_0").mkdir(parents=True)  # crash mid-extraction
    (data / "1_Swap_Deepfakes").mkdir()  # unpacked by hand, no marker: not trusted
    (data / "1_Swap_Deepfakes" / "stray.png").write_bytes(b"")
    assert extract(downloaded)["1_Swap_Deepfakes.zip"].status == "extracted"
    assert not (data / "1_Swap_Deepfakes" / "stray.png").exists()
    assert len(list((data / "1_Swap_Deepfakes").rglob("*.png"))) == 3
    assert not list(data.glob(".*"))


def test_corrupt_archive_is_reported_and_others_extract(downloaded, capsys):
    bad = downloaded / "data" / "32_Edit_StarGAN.zip"
    data = bytearray(bad.read_bytes())
    data[60:80] = b"\0" * 20  # inside the first member's compressed data
    bad.write_bytes(bytes(data))
    assert main(["--dataset_root", str(downloaded), "--extract"], fetcher=OfflineFetcher()) == 1
    out = capsys.readouterr().out
    assert "32_Edit_StarGAN.zip" in out and "re-run with --force_download" in out
    assert "extracted 2, skipped 0, failed 1" in out
    assert not (downloaded / "data" / "32_Edit_StarGAN").exists()
    assert (downloaded / "data" / "1_Swap_Deepfakes" / MARKER).is_file()
    assert not list((downloaded / "data").glob(".*"))


def test_truncated_archive_is_reported(downloaded):
    bad = downloaded / "data" / "1_Swap_Deepfakes.zip"
    bad.write_bytes(bad.read_bytes()[:100])
    result = extract(downloaded)[bad.name]
    assert result.status == "failed" and "--force_download" in result.detail
    assert not (downloaded / "data" / "1_Swap_Deepfakes").exists()


@pytest.mark.parametrize("entry", ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_unsafe_entries_are_rejected(tmp_path, entry):
    archive = tmp_path / "data" / "bad.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.png", b"fine")
        zf.writestr(zipfile.ZipInfo(entry), b"evil")  # ZipInfo keeps the name verbatim
    result = extract(tmp_path)["bad.zip"]
    assert result.status == "failed" and "unsafe entry" in result.detail
    assert not (tmp_path / "data" / "bad").exists() and not (tmp_path / "evil").exists()


def test_offline_extract_uses_local_archives(downloaded, capsys):
    (downloaded / PREDICTOR).unlink()
    assert main(["--dataset_root", str(downloaded), "--extract"], fetcher=OfflineFetcher()) == 0
    assert (downloaded / PREDICTOR).is_file()  # from face-recognition-models
    assert "extracted 3" in capsys.readouterr().out


def test_unreachable_hub_fails_fast_with_manual_instructions(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_OFFLINE", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dataset.get_data", "--dataset_root", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 20
    assert proc.returncode != 0
    for needed in ("https://huggingface.co/datasets/hyzheng/OWDFA40-Benchmark", "data/*.zip",
                   PREDICTOR, f"{tmp_path / 'data'}/", "--extract"):
        assert needed in proc.stderr, needed


def test_default_predictor_path_finds_the_packaged_file():
    path = default_predictor_path()
    assert path.name == PREDICTOR and path.stat().st_size > 90_000_000


def test_default_predictor_path_names_the_fix(monkeypatch):
    monkeypatch.setattr(get_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install face-recognition-models"):
        default_predictor_path()


def _declare_size(archive: Path, size: int) -> None:
    """Rewrite the uncompressed size of a one-member archive in both of its headers (a crafted zip)."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at:at + 4] = size.to_bytes(4, "little")
    archive.write_bytes(bytes(data))


@pytest.fixture
def extract_calls(monkeypatch):
    """Members zipfile was asked to extract since the test started."""
    calls, original = [], zipfile.ZipFile.extract

    def spy(self, member, *args, **kwargs):
        calls.append(getattr(member, "filename", member))
        return original(self, member, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "extract", spy)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda self, *a, **k: calls.append("extractall"))
    return calls


def test_bomb_member_is_refused_before_writing(tmp_path, extract_calls):
    archive = tmp_path / "data" / "7_Swap_Bomb.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("video_0/frame_000.png", bytes(2**20))  # 1 MiB of zeros: about 1 KB compressed
    _declare_size(archive, 2**30)
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("video_0/frame_000.png").file_size == 2**30
    result = extract(tmp_path)[archive.name]
    assert result.status == "failed"
    assert "'video_0/frame_000.png'" in result.detail and "zip bomb" in result.detail
    assert extract_calls == [] and sorted(p.name for p in (tmp_path / "data").iterdir()) == [archive.name]


def test_archive_larger_than_the_free_space_is_refused(downloaded, monkeypatch, extract_calls):
    free = 100
    usage = shutil.disk_usage(downloaded)
    monkeypatch.setattr(get_data.shutil, "disk_usage", lambda path: usage._replace(free=free))
    results = extract(downloaded)
    assert {r.status for r in results.values()} == {"failed"}
    detail = results["1_Swap_Deepfakes.zip"].detail
    with zipfile.ZipFile(downloaded / "data" / "1_Swap_Deepfakes.zip") as zf:
        declared = sum(m.file_size for m in zf.infolist())  # three members of 1.2 KB
    assert f"needs {declared / 1000:.1f} KB unpacked" in detail and "'video_0/frame_000.png'" in detail
    assert "only 100 B free on /" in detail
    assert extract_calls == [] and not (downloaded / "data" / "1_Swap_Deepfakes").exists()


def test_symlink_entries_are_skipped_and_counted(tmp_path):
    archive = tmp_path / "data" / "9_Swap_Links.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, target in (("video_0", "/etc"), ("escape.png", "../../outside.png")):
            link = zipfile.ZipInfo(name)
            link.create_system, link.external_attr = 3, (0o120777 << 16)  # a Unix symlink entry
            zf.writestr(link, target)
        zf.writestr("video_0/frame_000.png", b"image")  # under the symlinked directory
        zf.writestr("video_1/frame_000.png", b"image")
    result = extract(tmp_path)[archive.name]
    assert result.status == "extracted", result.detail
    assert result.detail == "2 files, 2 symlink entries skipped (warning: not created)"
    folder = tmp_path / "data" / "9_Swap_Links"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == \
        [MARKER, "video_0/frame_000.png", "video_1/frame_000.png"]
    assert not any(p.is_symlink() for p in folder.rglob("*"))
