"""Name a full disk plainly (torch, SQLite and zip extraction each word it their own way), and write
a file whole or not at all."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err: BaseException | None) -> bool:
    """True when ``err``, or an exception it was raised from, says the disk or quota is full."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
            return True
        if isinstance(err, sqlite3.Error) and (getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL:
            return True
        err = err.__cause__ or err.__context__
    return False


def free_space(path: str | os.PathLike) -> str:
    """``"12 MB free on /mount"`` for the file system holding ``path`` (or its nearest existing parent)."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    mount = folder
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    return f"{format_bytes(shutil.disk_usage(folder).free)} free on {mount}"


def disk_full_message(path: str | os.PathLike) -> str:
    """``"disk full writing PATH: 12 MB free on /mount"``."""
    return f"disk full writing {path}: {free_space(path)}"


def format_bytes(n: int) -> str:
    """Bytes in the largest unit that keeps the number >= 1: ``"512 B"``, ``"12 MB"``, ``"1.5 GB"``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all: to a temporary file beside
    it, renamed over it. A symbolic link is written through: its target is replaced and the link
    kept. A full disk raises an OSError (ENOSPC) that says so with the free space."""
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except OSError as err:
        if is_disk_full(err):
            raise OSError(errno.ENOSPC, disk_full_message(target)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
