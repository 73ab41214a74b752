"""Persistent face-crop cache: detection runs once per image, never per read.

Per image it stores a ``FaceRecord`` (box, landmarks; not pixels: ``FaceCropper.crop``
redoes the crop pixel for pixel) in one SQLite file (``<cache_dir>/<root name>.sqlite``,
WAL; the process calling ``ensure`` is the only writer, workers only detect), by default in
``<dataset_root>/../owdfa_crop_cache``, keyed by the path relative to the dataset root (a
name that is not UTF-8: its bytes) and ``CropSettings.key()``, valid while the file's size
and ``mtime_ns`` are unchanged. The same table holds ``crop_face=false``'s readability check
(``READ_CHECK``), which goes on without a cache another process holds, and video
frames (``<video>#<frame>``). A corrupt database is
renamed ``*.corrupt-<time>`` and rebuilt; an unwritable cache is read while it holds every
image asked for. Processes may start on a new cache together: its set-up runs under a
``flock`` on ``<name>.sqlite.lock`` (SQLite answers a second set-up at once with "database
is locked"), other busy answers are retried for ``LOCK_WAIT`` seconds (docs/data.md).
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing, contextmanager, nullcontext
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from dataset.faces import CropSettings, FaceCropper, FaceRecord
from dataset.image_io import UnreadableImage, read_rgb
from dataset.split import DatasetError
from utils.disk import disk_full_message, is_disk_full
from utils.progress import progress_bar

log = logging.getLogger(__name__)

WRITE_BATCH = 256  # records per commit: an interrupted run keeps what it finished
LOCK_WAIT = 60.0  # seconds to wait for another process's hold on the cache before giving up
OPTIONAL_WAIT = 2.0  # the same for the readability check, which then goes on without the cache
CONFIG_HINT = "crop_cache_dir=DIR (prepare.py --cache_dir DIR)"  # how to move the cache, in messages
READ_CHECK = "read-v1"  # settings key of the readability check; bump when read_rgb's rules change
_SCHEMA = """CREATE TABLE IF NOT EXISTS faces (
    path TEXT NOT NULL,         -- relative to the dataset root, '/' separated (BLOB: a non-UTF-8 name's bytes)
    settings TEXT NOT NULL,     -- CropSettings.key(), or READ_CHECK
    size INTEGER NOT NULL,      -- file size in bytes when detected (-1: could not stat)
    mtime_ns INTEGER NOT NULL,  -- file mtime in ns when detected (-1: could not stat)
    record TEXT NOT NULL,       -- FaceRecord.to_json(); for READ_CHECK the unreadable reason, "" if readable
    PRIMARY KEY (path, settings)
) WITHOUT ROWID"""
_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_NOT_WRITABLE = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM)
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class CropCacheError(DatasetError):
    """The crop cache cannot be used here; the message names the fix."""


class CropCacheBusy(CropCacheError):
    """Another process held the crop cache for longer than this one would wait."""


def default_cache_dir(dataset_root: str | os.PathLike) -> Path:
    """``<dataset_root>/../owdfa_crop_cache``: beside the data, shared by every run on it."""
    return Path(os.path.abspath(dataset_root)).parent / "owdfa_crop_cache"


def user_cache_dir(folder: str | os.PathLike) -> Path:
    """A crop cache for images outside any dataset, in the user's cache folder (never beside the
    images): ``$XDG_CACHE_HOME`` (default ``~/.cache``) ``/owdfa_cal/crop_cache/<name>-<hash of the path>``."""
    folder = os.path.abspath(folder)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:12]
    return base / "owdfa_cal" / "crop_cache" / f"{Path(folder).name or 'root'}-{digest}"


def check_file(path: str) -> str:
    """Why ``path`` cannot be decoded, "" when it can (a full decode, so truncation is caught too)."""
    try:
        read_rgb(path)
    except UnreadableImage as err:
        return err.reason
    return ""


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
    """Face records of the images under ``dataset_root`` for one ``CropSettings`` (``ensure``), and
    whether each image decodes (``check_readable``, for ``crop_face=false``).

    ``read_only``: open the database with SQLite's ``mode=ro`` and never write;
    it is also chosen by itself when the cache location cannot be written.
    ``hint``: how the caller's user moves the cache, for error messages.
    """

    def __init__(self, cache_dir: str | os.PathLike | None, dataset_root: str | os.PathLike,
                 settings: CropSettings = CropSettings(), read_only: bool = False, hint: str = CONFIG_HINT):
        self.root = os.path.abspath(dataset_root)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.root)
        self.settings = settings
        self.db_path = self.cache_dir / f"{Path(self.root).name or 'root'}.sqlite"
        self.read_only = read_only
        self.hint = hint

    def ensure(self, paths: Iterable[str], workers: int = 0, progress: bool = True) -> dict[str, FaceRecord]:
        """Records for all ``paths`` (keyed as given), detecting only missing or stale ones.

        ``workers`` > 1 detects in that many processes; 0 or 1 in this process.
        """
        texts = self._ensure(self.settings.key(), paths, _FaceTask(self.settings), workers, progress,
                             "face detection")
        return {path: FaceRecord.from_json(text) for path, text in texts.items()}

    def frame_records(self, videos: Iterable[str]) -> dict[str, dict[int, FaceRecord]]:
        """The records stored for frames of ``videos`` that are still valid: video -> frame index -> record."""
        wanted = {self._relative(video): (video, _stat(video)) for video in videos}
        found: dict[str, dict[int, FaceRecord]] = {video: {} for video, _ in wanted.values()}
        db, stored = self._open(self.settings.key())
        db.close()
        for key, (size, mtime, text) in stored.items():
            base, mark, frame = (key if isinstance(key, str) else os.fsdecode(key)).rpartition("#")
            if mark and frame.isdigit() and base in wanted and wanted[base][1] == (size, mtime):
                found[wanted[base][0]][int(frame)] = FaceRecord.from_json(text)
        return found

    def add_frame_records(self, video: str, records: Mapping[int, FaceRecord]) -> None:
        """Store the records (frame index -> record) of frames of ``video``; a read-only cache keeps none."""
        if not records or self.read_only:
            return
        rel, (size, mtime) = self._relative(video), _stat(video)
        rows = [(_db_key(f"{rel}#{index}"), self.settings.key(), size, mtime, record.to_json())
                for index, record in records.items()]
        try:
            with closing(self._connect()) as db:
                if not self.read_only:  # the place may have turned out unwritable
                    writer = _Writer(db, self.settings.key(), self, optional=False)
                    for row in rows:
                        writer.add(row)
                    writer.flush()
        except sqlite3.Error as err:
            raise self._write_error(err) from None

    def check_readable(self, paths: Iterable[str], workers: int = 0, progress: bool = True) -> dict[str, str]:
        """Why each of ``paths`` cannot be decoded ("" when it can), checking only new or changed files.
        The cache only saves time here: while another process holds it (longer than ``OPTIONAL_WAIT``),
        the check runs, or goes on, without it."""
        return self._ensure(READ_CHECK, paths, check_file, workers, progress, "image check", optional=True)

    def _ensure(self, key: str, paths: Iterable[str], task: Callable[[str], str], workers: int, progress: bool,
                desc: str, optional: bool = False) -> dict[str, str]:
        """The stored text of ``key`` for every path, computing ``task(path)`` where missing or stale;
        ``optional``: a cache another process holds is done without (``check_readable``)."""
        todo: dict[str, tuple[str, tuple[int, int]]] = {}  # path -> (relative path, (size, mtime_ns))
        texts: dict[str, str] = {}
        paths = list(dict.fromkeys(paths))
        try:
            db, stored = self._open(key, LOCK_WAIT if not optional else OPTIONAL_WAIT)
        except CropCacheBusy as err:
            if not optional:
                raise
            log.info("the %s runs without the crop cache: %s", desc, err)
            db, stored = None, {}
        with closing(db) if db is not None else nullcontext():
            for path in paths:
                rel, stamp = _db_key(self._relative(path)), _stat(path)
                hit = stored.get(rel)
                if hit is not None and hit[:2] == stamp:
                    texts[path] = hit[2]
                else:
                    todo[path] = (rel, stamp)
            log.info("crop cache %s%s: %d of %d images cached (%s), %d to compute", self.db_path,
                     " (read-only)" if self.read_only else "", len(texts), len(paths), key, len(todo))
            if todo and self.read_only:
                prepare = (f", or run `python dataset/prepare.py --dataset_root {self.root}` where {self.cache_dir} "
                           f"can be written" if self.hint == CONFIG_HINT else "")
                raise CropCacheError(
                    f"the crop cache {self.db_path} is read-only here and lacks {len(todo)} of {len(paths)} images "
                    f"(settings {key}, e.g. {next(iter(todo))}); point the cache at a writable folder with "
                    f"{self.hint}{prepare}")
            if todo:
                writer = _Writer(db, key, self, optional)
                try:
                    self._compute(writer, todo, task, workers, progress, desc, texts)
                except sqlite3.Error as err:
                    raise self._write_error(err) from None
        return {path: texts[path] for path in paths}

    def _compute(self, writer, todo, task, workers, progress, desc, texts):
        if workers > 1:
            chunksize = max(1, min(32, len(todo) // (4 * workers)))
            with Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(task,)) as pool:
                results = pool.imap_unordered(_run_in_worker, todo, chunksize)
                _store(writer, todo, results, progress, desc, texts)
        else:
            _store(writer, todo, ((path, task(path)) for path in todo), progress, desc, texts)

    def _open(self, key: str, wait: float = LOCK_WAIT) -> tuple[sqlite3.Connection, dict]:
        """A connection and the stored rows of ``key``; a corrupt database is set aside and rebuilt.
        Another process's hold on the database is waited for up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            db = None
            try:
                db = self._connect(wait)
                check = db.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {check}")
                return db, _rows(db, key)
            except sqlite3.DatabaseError as err:
                if db is not None:
                    db.close()
                if _code(err) in _BUSY:
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    raise self._busy(err, wait) from None
                if isinstance(err, sqlite3.OperationalError) and _code(err) not in _CORRUPT:
                    raise CropCacheError(f"cannot read the crop cache {self.db_path} ({err}); point the cache at "
                                         f"another folder with {self.hint}") from None
                reason = str(err)
                break
        if self.read_only:
            raise CropCacheError(f"the crop cache {self.db_path} is corrupt ({reason}) and read-only here; point the "
                                 f"cache at a writable folder with {self.hint}")
        moved = self._set_aside()
        log.warning("the crop cache %s was corrupt (%s); moved it to %s and rebuilding it (every image is "
                    "computed again)", self.db_path, reason, moved.name)
        return self._connect(wait), {}

    def _set_aside(self) -> Path:
        """Rename the database (and its WAL files) to ``*.corrupt-<time>``; return the new database path."""
        suffix = f".corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        for extra in ("-wal", "-shm"):
            companion = Path(f"{self.db_path}{extra}")
            if companion.exists():
                companion.rename(f"{companion}{suffix}")
        moved = Path(f"{self.db_path}{suffix}")
        self.db_path.rename(moved)
        return moved

    def _connect(self, wait: float = LOCK_WAIT) -> sqlite3.Connection:
        """A writable connection, or a ``mode=ro`` one when read-only or the location cannot be written;
        ``wait``: seconds to wait for another process's hold on the database."""
        if not self.read_only:
            try:
                return self._connect_writable(wait)
            except OSError as err:
                reason = err.strerror or str(err)
            except sqlite3.OperationalError as err:
                if _code(err) not in _NOT_WRITABLE:
                    raise
                reason = str(err)
            if not self.db_path.is_file():
                raise CropCacheError(f"cannot create the crop cache {self.db_path} ({reason}); point it at a "
                                     f"writable folder with {self.hint}")
            log.info("crop cache %s cannot be written here (%s): reading it read-only", self.db_path, reason)
            self.read_only = True
        if not self.db_path.is_file():
            raise CropCacheError(f"no crop cache at {self.db_path} to read; point {self.hint} "
                                 f"at a complete cache or at a writable folder")
        # Without a WAL beside it the file is the whole database: read it as immutable, so SQLite needs
        # no -shm file in a folder it cannot write.
        wal = Path(f"{self.db_path}-wal")
        immutable = "&immutable=1" if not wal.exists() or wal.stat().st_size == 0 else ""
        return sqlite3.connect(f"{self.db_path.absolute().as_uri()}?mode=ro{immutable}", uri=True, timeout=wait)

    def _connect_writable(self, wait: float = LOCK_WAIT) -> sqlite3.Connection:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.cache_dir, os.W_OK) or (self.db_path.exists() and not os.access(self.db_path, os.W_OK)):
            raise PermissionError(13, "not writable")  # e.g. a read-only mount, where SQLite fails late
        with self._setup_lock(wait):
            db = sqlite3.connect(self.db_path, timeout=wait)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
            except BaseException:
                db.close()
                raise
        return db

    @contextmanager
    def _setup_lock(self, wait: float):
        """Hold an exclusive ``flock`` on ``<name>.sqlite.lock`` (waiting up to ``wait`` seconds for
        another process's): one process at a time creates the database and sets it up."""
        path = f"{self.db_path}.lock"
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # read access is enough for flock
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self._busy(f"{path} is locked", wait) from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # drops the lock

    def _busy(self, err, wait: float) -> CropCacheBusy:
        return CropCacheBusy(f"the crop cache {self.db_path} is busy ({err}): another process held it for more "
                             f"than {wait:.0f} s; run again once it is done, or point the cache elsewhere with "
                             f"{self.hint}")

    def _write_error(self, err: sqlite3.Error) -> Exception:
        if _code(err) in _BUSY:
            return self._busy(err, LOCK_WAIT)
        if is_disk_full(err):
            return CropCacheError(disk_full_message(self.db_path))
        if _code(err) in _CORRUPT:
            return CropCacheError(f"the crop cache {self.db_path} turned out corrupt while writing ({err}); run "
                                  f"again: it is then set aside and rebuilt")
        return CropCacheError(f"cannot write the crop cache {self.db_path} ({err}); point the cache at a "
                              f"writable folder with {self.hint}")

    def _relative(self, path: str) -> str:
        full, prefix = os.path.abspath(path), os.path.join(self.root, "")  # prefix ends in one separator
        if not full.startswith(prefix):
            raise ValueError(f"{path!r} is not under the dataset root {self.root!r}")
        return full[len(prefix):].replace(os.sep, "/")


def _db_key(rel: str) -> str | bytes:
    """The database form of a relative path: itself, or its bytes when it is not valid UTF-8
    (``os.listdir`` gives such a name with surrogate escapes, which SQLite text cannot hold)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(rel)
    return rel


def _code(err: sqlite3.Error) -> int:
    """SQLite's primary result code of ``err`` (extended codes carry it in the low byte)."""
    return (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF


def _rows(db: sqlite3.Connection, key: str) -> dict[str, tuple[int, int, str]]:
    """Relative path -> (size, mtime_ns, record) of the entries stored for ``key``."""
    # A cache created read-only elsewhere may predate the table; treat it as empty.
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'faces'").fetchone() is None:
        return {}
    return {rel: (size, mtime, text) for rel, size, mtime, text in
            db.execute("SELECT path, size, mtime_ns, record FROM faces WHERE settings = ?", (key,))}


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:  # missing: cached as unreadable until the file appears
        return -1, -1
    return st.st_size, st.st_mtime_ns


def _store(writer: "_Writer", todo, results, progress, desc, texts) -> None:
    """Collect (path, text) results into ``texts`` and the database, in batches."""
    try:
        for path, text in progress_bar(results, total=len(todo), desc=desc, disable=not progress):
            texts[path] = text
            rel, (size, mtime) = todo[path]
            writer.add((rel, writer.key, size, mtime, text))
    finally:
        writer.flush()  # keep finished work even when interrupted


class _Writer:
    """Rows for ``db`` (None: nothing is written), committed ``WRITE_BATCH`` at a time. A busy
    database is retried for up to ``LOCK_WAIT`` seconds; ``optional``: one busy for longer than
    ``OPTIONAL_WAIT`` ends the writing, not the work, with a note."""

    def __init__(self, db: sqlite3.Connection | None, key: str, cache: CropCache, optional: bool):
        self.db, self.key, self.cache, self.optional = db, key, cache, optional
        self.batch: list = []

    def add(self, row: tuple) -> None:
        self.batch.append(row)
        if len(self.batch) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self.batch = self.batch, []
        if self.db is None or not rows:
            return
        deadline = time.monotonic() + (OPTIONAL_WAIT if self.optional else LOCK_WAIT)
        while True:
            try:
                with self.db:
                    self.db.executemany("INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?, ?)", rows)
                return
            except sqlite3.Error as err:
                if _code(err) not in _BUSY:
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                elif self.optional:
                    log.info("the crop cache %s stays busy (%s): the rest of the check is not cached",
                             self.cache.db_path, err)
                    self.db = None
                    return
                else:
                    raise


class _FaceTask:
    """Path -> FaceRecord JSON; a worker process unpickles it once, so dlib loads once per worker."""

    def __init__(self, settings: CropSettings):
        self.cropper = FaceCropper(settings)

    def __call__(self, path: str) -> str:
        return detect_file(path, self.cropper).to_json()


_worker_task: Callable[[str], str] | None = None  # set once per worker process


def _init_worker(task: Callable[[str], str]) -> None:
    global _worker_task
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker_task = task


def _run_in_worker(path: str) -> tuple[str, str]:
    return path, _worker_task(path)


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
