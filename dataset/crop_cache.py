"""Persistent face-crop cache: detection runs once per image, never per read.

Per image it stores a ``FaceRecord`` (box, landmarks; not pixels: a few bytes,
and ``FaceCropper.crop`` redoes the crop pixel for pixel) in one SQLite file
(``<cache_dir>/<dataset root folder name>.sqlite``, WAL mode; the process
calling ``ensure`` is the only writer, workers only detect). The default
cache folder is ``<dataset_root>/../owdfa_crop_cache``, beside the data.

An entry is keyed by the image path relative to the dataset root and the
``CropSettings.key()``; it is valid only while the file's size and
``mtime_ns`` equal the stored ones. So a touched image, or new crop settings,
recomputes exactly the entries concerned and nothing else.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataset.faces import CropSettings, FaceCropper, FaceRecord
from dataset.image_io import UnreadableImage, read_rgb

log = logging.getLogger(__name__)

WRITE_BATCH = 256  # records per commit: an interrupted run keeps what it finished
_SCHEMA = """CREATE TABLE IF NOT EXISTS faces (
    path TEXT NOT NULL,         -- relative to the dataset root, '/' separated
    settings TEXT NOT NULL,     -- CropSettings.key()
    size INTEGER NOT NULL,      -- file size in bytes when detected (-1: could not stat)
    mtime_ns INTEGER NOT NULL,  -- file mtime in ns when detected (-1: could not stat)
    record TEXT NOT NULL,       -- FaceRecord.to_json()
    PRIMARY KEY (path, settings)
) WITHOUT ROWID"""


def default_cache_dir(dataset_root: str | os.PathLike) -> Path:
    """``<dataset_root>/../owdfa_crop_cache``: beside the data, shared by every run on it."""
    return Path(os.path.abspath(dataset_root)).parent / "owdfa_crop_cache"


def detect_file(path: str, cropper: FaceCropper) -> FaceRecord:
    """Read and detect one image; an unreadable file becomes an "unreadable" record."""
    try:
        image = read_rgb(path)
    except UnreadableImage as err:
        return FaceRecord("unreadable", reason=err.reason)
    return cropper.detect(image)


def load_face(path: str, record: FaceRecord, cropper: FaceCropper) -> np.ndarray:
    """The cropped face of ``path`` from its cached record; ``UnreadableImage`` propagates."""
    return cropper.crop(read_rgb(path), record)


class CropCache:
    """Face records of the images under ``dataset_root`` for one ``CropSettings``."""

    def __init__(self, cache_dir: str | os.PathLike | None, dataset_root: str | os.PathLike,
                 settings: CropSettings = CropSettings()):
        self.root = os.path.abspath(dataset_root)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.root)
        self.settings = settings
        self.db_path = self.cache_dir / f"{Path(self.root).name}.sqlite"

    def ensure(self, paths: Iterable[str], workers: int = 0, progress: bool = True) -> dict[str, FaceRecord]:
        """Records for all ``paths`` (keyed as given), detecting only missing or stale ones.

        ``workers`` > 1 detects in that many processes; 0 or 1 in this process.
        """
        key = self.settings.key()
        todo: dict[str, tuple[str, tuple[int, int]]] = {}  # path -> (relative path, (size, mtime_ns))
        records: dict[str, FaceRecord] = {}
        paths = list(dict.fromkeys(paths))
        with closing(self._connect()) as db:
            stored = {rel: (size, mtime, text) for rel, size, mtime, text in
                      db.execute("SELECT path, size, mtime_ns, record FROM faces WHERE settings = ?", (key,))}
            for path in paths:
                rel, stamp = self._relative(path), _stat(path)
                hit = stored.get(rel)
                if hit is not None and hit[:2] == stamp:
                    records[path] = FaceRecord.from_json(hit[2])
                else:
                    todo[path] = (rel, stamp)
            log.info("crop cache %s: %d of %d images cached, %d to detect", self.db_path, len(records),
                     len(paths), len(todo))
            if todo:
                self._detect(db, key, todo, workers, progress, records)
        return {path: records[path] for path in paths}

    def _detect(self, db, key, todo, workers, progress, records):
        if workers > 1:
            chunksize = max(1, min(32, len(todo) // (4 * workers)))
            with Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(self.settings,)) as pool:
                _store(db, key, todo, pool.imap_unordered(_detect_in_worker, todo, chunksize), progress, records)
        else:
            cropper = FaceCropper(self.settings)
            _store(db, key, todo, ((path, detect_file(path, cropper)) for path in todo), progress, records)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.db_path, timeout=60)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise OSError(f"cannot open the crop cache {self.db_path} ({err}); choose a writable folder "
                          "(--cache_dir for prepare.py, crop_cache_dir in the config)") from None
        return db

    def _relative(self, path: str) -> str:
        full = os.path.abspath(path)
        if not full.startswith(self.root + os.sep):
            raise ValueError(f"{path!r} is not under the dataset root {self.root!r}")
        return full[len(self.root) + 1:].replace(os.sep, "/")


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:  # missing: cached as unreadable until the file appears
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _store(db, key, todo, results, progress, records) -> None:
    """Collect (path, record) results into ``records`` and the database, in batches."""
    batch = []
    try:
        for path, record in tqdm(results, total=len(todo), desc="face detection", disable=not progress):
            records[path] = record
            rel, (size, mtime) = todo[path]
            batch.append((rel, key, size, mtime, record.to_json()))
            if len(batch) >= WRITE_BATCH:
                _write(db, batch)
    finally:
        _write(db, batch)  # keep finished work even when interrupted


def _write(db: sqlite3.Connection, batch: list) -> None:
    with db:
        db.executemany("INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?, ?)", batch)
    batch.clear()


_worker_cropper: FaceCropper | None = None  # one per worker process, so dlib loads once


def _init_worker(settings: CropSettings) -> None:
    global _worker_cropper
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker_cropper = FaceCropper(settings)


def _detect_in_worker(path: str) -> tuple[str, FaceRecord]:
    return path, detect_file(path, _worker_cropper)


def class_report(records: Mapping[str, FaceRecord], labels: Mapping[str, int]) -> dict:
    """Per class and in total: images, faces found, no face, unreadable; plus the unreadable files.

    ``labels`` maps each path of ``records`` to its class index.
    """
    def counts():
        return {"images": 0, "faces": 0, "no_face": 0, "unreadable": 0}

    classes, total, unreadable = {}, counts(), []
    column = {"face": "faces", "no_face": "no_face", "unreadable": "unreadable"}
    for path, record in records.items():
        row = classes.setdefault(labels[path], counts())
        for c in (row, total):
            c["images"] += 1
            c[column[record.status]] += 1
        if record.status == "unreadable":
            unreadable.append({"path": path, "reason": record.reason})
    return {"classes": dict(sorted(classes.items())), "total": total, "unreadable": unreadable}


def format_report(report: dict) -> str:
    """The per-class counts of ``class_report`` as a text table."""
    lines = [f"{'class':>5} {'images':>8} {'faces':>8} {'no_face':>8} {'unreadable':>10}"]
    rows = [(str(k), v) for k, v in report["classes"].items()] + [("total", report["total"])]
    for name, c in rows:
        lines.append(f"{name:>5} {c['images']:>8} {c['faces']:>8} {c['no_face']:>8} {c['unreadable']:>10}")
    return "\n".join(lines)
