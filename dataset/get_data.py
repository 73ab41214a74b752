"""Download OWDFA-40 from the Hugging Face hub and unpack it.

    python dataset/get_data.py --dataset_root /data/OWDFA40-Benchmark --extract
    python -m dataset.get_data --dataset_root DIR [--extract] [--force_download] [--workers N]

gives ``DIR/shape_predictor_68_face_landmarks.dat``, ``DIR/data/<class>.zip``
and, with ``--extract``, ``DIR/data/<class>/`` (DIR/data is the config's
dataset_root). Only ``data/*.zip`` and the landmark predictor are fetched;
downloads resume, files present with the listed size are skipped. Extraction
(no network needed) verifies each archive's CRC, extracts into a hidden
sibling folder, renames it into place and leaves a marker so unchanged
archives are skipped. It refuses, before writing, an entry outside its folder,
a member inflating more than ``MAX_RATIO``:1 above ``RATIO_MIN_BYTES`` (a zip
bomb) or more data than the free disk space; symlink entries are skipped.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import stat
import sys
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.disk import disk_full_message, format_bytes, free_space, is_disk_full  # noqa: E402
from utils.progress import progress_bar  # noqa: E402

REPO_ID = "hyzheng/OWDFA40-Benchmark"
REPO_URL = f"https://huggingface.co/datasets/{REPO_ID}"
PREDICTOR = "shape_predictor_68_face_landmarks.dat"
MARKER = ".extracted.json"
HUB_TIMEOUT_S = 10.0  # metadata calls; the hub client would otherwise retry for ~30 s
MAX_RATIO = 200  # uncompressed:compressed above which a large member is taken for a zip bomb
RATIO_MIN_BYTES = 100 * 2**20  # members smaller than this may compress as well as they like


class FetchError(RuntimeError):
    """The file source (the hub) could not list or deliver a file."""


class UnsafeArchive(ValueError):
    """An archive that must not be extracted: an entry outside its folder, a zip bomb, too large for the disk."""


class Fetcher(Protocol):
    """The one network-facing piece; tests substitute a local folder."""

    source: str  # human-readable origin, used in messages

    def list_files(self) -> dict[str, int | None]:
        """Map each repository file (posix path) to its size in bytes, if known."""

    def fetch(self, filename: str, dest_dir: Path, force: bool = False) -> Path:
        """Place ``filename`` at ``dest_dir/filename``; resume unless ``force``."""


class HubFetcher:
    """Fetch files of the dataset repository with ``huggingface_hub``.

    ``huggingface_hub`` is imported on first use so that importing this module
    (e.g. for :func:`default_predictor_path`) stays cheap.
    """

    def __init__(self, repo_id: str = REPO_ID, endpoint: str | None = None):
        self.repo_id = repo_id
        self.endpoint = endpoint  # None: HF_ENDPOINT or huggingface.co
        self.source = f"https://huggingface.co/datasets/{repo_id}"

    def list_files(self) -> dict[str, int | None]:
        from huggingface_hub import HfApi

        # repo info is a single GET without the client's retry/backoff loop, so
        # an unreachable hub fails within HUB_TIMEOUT_S instead of minutes.
        try:
            info = HfApi(endpoint=self.endpoint).dataset_info(
                self.repo_id, files_metadata=True, timeout=HUB_TIMEOUT_S)
        except Exception as err:  # network, HTTP and offline-mode errors alike
            raise FetchError(f"cannot list {self.source} ({type(err).__name__}: {err})") from err
        return {s.rfilename: s.size for s in info.siblings or []}

    def fetch(self, filename: str, dest_dir: Path, force: bool = False) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(self.repo_id, filename, repo_type="dataset", local_dir=dest_dir,
                                   endpoint=self.endpoint, force_download=force,
                                   etag_timeout=HUB_TIMEOUT_S)
        except Exception as err:
            raise FetchError(f"cannot download {filename} ({type(err).__name__}: {err})") from err
        return Path(path)


def default_predictor_path() -> Path:
    """Path of the 68-landmark predictor shipped in PyPI's ``face-recognition-models``.

    The package is located without importing it: its ``__init__`` needs
    setuptools' ``pkg_resources``, which recent environments lack.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "models" / PREDICTOR
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{PREDICTOR} not found: install it with `pip install face-recognition-models` "
        f"or download it from {REPO_URL}")


# ----------------------------------------------------------------------------- download

def needs_fetch(path: Path, size: int | None) -> bool:
    """True when ``path`` is missing or its size differs from the listed one."""
    return not path.is_file() or (size is not None and path.stat().st_size != size)


def fetch_files(fetcher: Fetcher, names: list[str], sizes: dict[str, int | None],
                root: Path, force: bool) -> list[str]:
    """Fetch the ``names`` that are missing or incomplete under ``root`` (all if ``force``)."""
    todo = [n for n in names if force or needs_fetch(root / n, sizes.get(n))]
    for i, name in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {name}")
        if not force and (root / name).is_file():
            (root / name).unlink()  # wrong size: a stale or truncated copy
        fetcher.fetch(name, root, force=force)
    return todo


def download(fetcher: Fetcher, root: Path, force: bool = False) -> None:
    """Fetch ``data/*.zip`` and the predictor into ``root``; raise FetchError if impossible."""
    sizes = fetcher.list_files()
    zips = sorted(n for n in sizes if n.startswith("data/") and n.endswith(".zip"))
    if not zips:
        raise FetchError(f"{fetcher.source} lists no data/*.zip files")
    fetched = fetch_files(fetcher, zips, sizes, root, force)
    print(f"archives: {len(fetched)} downloaded, {len(zips) - len(fetched)} already present")
    if PREDICTOR in sizes:
        try:
            fetch_files(fetcher, [PREDICTOR], sizes, root, force)
        except FetchError as err:
            print(f"warning: {err}; falling back to face-recognition-models", file=sys.stderr)


def ensure_predictor(root: Path) -> Path:
    """Copy the predictor from ``face-recognition-models`` to ``root`` if it is not there."""
    dest = root / PREDICTOR
    if not dest.is_file():
        src = default_predictor_path()
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
        print(f"copied {PREDICTOR} from {src.parent}")
    return dest


def manual_download_message(root: Path, err: Exception) -> str:
    """What to download by hand, and where to put it, when the hub is unreachable."""
    return (
        f"error: {err}\n"
        f"Download the files by hand from {REPO_URL}/tree/main\n"
        f"  data/*.zip (all of them)               -> {root / 'data'}/\n"
        f"  {PREDICTOR}  -> {root}/\n"
        f"    (or `pip install face-recognition-models`: the next run copies it from there)\n"
        f"then unpack them offline with\n"
        f"  python dataset/get_data.py --dataset_root {root} --extract")


# ----------------------------------------------------------------------------- extract

@dataclass
class Result:
    archive: str
    status: str  # extracted, skipped or failed
    detail: str


def archive_stamp(archive: Path) -> dict:
    """Identity of an archive for the skip check: name, size and mtime."""
    st = archive.stat()
    return {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_extracted(archive: Path, target: Path) -> bool:
    """True when ``target`` holds a complete extraction of this very archive."""
    try:
        return json.loads((target / MARKER).read_text()) == archive_stamp(archive)
    except (OSError, ValueError):
        return False


def check_members(zf: zipfile.ZipFile) -> None:
    """Raise UnsafeArchive for absolute paths, drive letters and ``..`` entries."""
    for name in zf.namelist():
        parts = name.replace("\\", "/").split("/")
        if parts[0] == "" or parts[0][1:2] == ":" or ".." in parts:
            raise UnsafeArchive(f"unsafe entry {name!r} (absolute path or '..'); refusing to extract")


def is_symlink(member: zipfile.ZipInfo) -> bool:
    """True for an entry stored as a symbolic link (Unix mode bits in the high half of external_attr)."""
    return stat.S_ISLNK(member.external_attr >> 16)


def check_sizes(members: list[zipfile.ZipInfo], folder: Path) -> None:
    """Raise UnsafeArchive for a member that inflates absurdly or more data than ``folder``'s disk holds.

    zipfile never writes more than a member's declared size (it stops there and
    checks the CRC), so the declared sizes bound what extraction writes.
    """
    for m in members:
        if m.file_size > RATIO_MIN_BYTES and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise UnsafeArchive(
                f"member {m.filename!r} inflates {format_bytes(m.compress_size)} to {format_bytes(m.file_size)} "
                f"(more than {MAX_RATIO}:1): likely a zip bomb; refusing to extract")
    total = sum(m.file_size for m in members)
    free = shutil.disk_usage(folder).free
    if total > free:
        largest = max(members, key=lambda m: m.file_size)
        raise UnsafeArchive(
            f"needs {format_bytes(total)} unpacked (largest member {largest.filename!r}, "
            f"{format_bytes(largest.file_size)}) but only {free_space(folder)}; free space or move the data")


def replace_dir(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest``, replacing it; ``dest`` is never partially filled."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        src.rename(dest)
        shutil.rmtree(old)
    else:
        src.rename(dest)


def extract_archive(archive: Path) -> Result:
    """Extract ``<name>.zip`` into the sibling folder ``<name>/`` unless already done.

    Files are written to the hidden sibling ``.<name>.partial`` and renamed into
    place once complete, so a crash never leaves a folder that looks finished.
    zipfile checks each member's CRC-32 as it is extracted (BadZipFile on a
    mismatch), so the archive is verified in the same single read.
    """
    target = archive.with_suffix("")
    if is_extracted(archive, target):
        return Result(archive.name, "skipped", "up to date")
    stamp = archive_stamp(archive)
    tmp = archive.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left over by an interrupted run
    try:
        with zipfile.ZipFile(archive) as zf:
            check_members(zf)
            members = [m for m in zf.infolist() if not is_symlink(m)]
            check_sizes(members, archive.parent)
            for member in members:
                zf.extract(member, tmp)
        n_files, n_links = sum(not m.is_dir() for m in members), len(zf.infolist()) - len(members)
        (tmp / MARKER).write_text(json.dumps(stamp))
        replace_dir(tmp, target)
    except UnsafeArchive as err:
        return Result(archive.name, "failed", str(err))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        return Result(archive.name, "failed",
                      f"corrupt archive ({err}); fix: re-run with --force_download")
    except OSError as err:
        detail = disk_full_message(target) if is_disk_full(err) else f"{type(err).__name__}: {err}"
        return Result(archive.name, "failed", detail)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    skipped = f", {n_links} symlink entries skipped (warning: not created)" if n_links else ""
    return Result(archive.name, "extracted", f"{n_files} files{skipped}")


def extract_all(data_dir: Path, workers: int) -> list[Result]:
    """Extract every ``data_dir/*.zip`` in a thread pool (zlib and file I/O release the GIL)."""
    archives = sorted(data_dir.glob("*.zip"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(extract_archive, a) for a in archives]
        for _ in progress_bar(as_completed(futures), total=len(futures), desc="extract", unit="zip"):
            pass
    return [f.result() for f in futures]


def print_summary(results: list[Result]) -> None:
    """One row per archive, then the counts per status."""
    width = max(len(r.archive) for r in results)
    print(f"\n{'archive':<{width}}  {'status':<9}  detail")
    for r in results:
        print(f"{r.archive:<{width}}  {r.status:<9}  {r.detail}")
    counts = {s: sum(r.status == s for r in results) for s in ("extracted", "skipped", "failed")}
    print(", ".join(f"{k} {v}" for k, v in counts.items()))


# ----------------------------------------------------------------------------- CLI

def print_next_steps(root: Path, extracted: bool) -> None:
    """Where the config should point, and what to run next."""
    data = root / "data"
    print(f"\nIn your config:  dataset_root = \"{data}\"  (or export DATASET_ROOT={data})"
          f"\nLandmark predictor: {root / PREDICTOR}\nNext:")
    if not extracted:
        print(f"  python dataset/get_data.py --dataset_root {root} --extract")
    print(f"  python dataset/prepare.py --dataset_root {data}")


def run(root: Path, fetcher: Fetcher, extract: bool = False, force: bool = False,
        workers: int = 1) -> int:
    """Download, then optionally extract; return the process exit code."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        download(fetcher, root, force)
    except FetchError as err:
        if not (extract and any(data_dir.glob("*.zip"))):
            print(manual_download_message(root, err), file=sys.stderr)
            return 2
        print(f"warning: {err}\nextracting the archives already in {data_dir}", file=sys.stderr)
    status = 0
    try:
        ensure_predictor(root)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        status = 1
    if extract:
        results = extract_all(data_dir, workers)
        print_summary(results)
        if any(r.status == "failed" for r in results):
            status = 1
    print_next_steps(root, extract)
    return status


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dataset.get_data", description=__doc__.split("\n")[0])
    p.add_argument("--dataset_root", type=Path, required=True, metavar="DIR",
                   help="folder that receives data/*.zip and the predictor")
    p.add_argument("--extract", action="store_true",
                   help="unpack every data/<name>.zip into data/<name>/ (works offline)")
    p.add_argument("--force_download", action="store_true",
                   help="download files again even if present (e.g. after a corrupt archive)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="archives extracted in parallel")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, fetcher: Fetcher | None = None) -> int:
    args = parse_args(argv)
    return run(args.dataset_root.expanduser().resolve(), fetcher or HubFetcher(),
               extract=args.extract, force=args.force_download, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
