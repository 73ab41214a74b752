"""A fatal error is one plain line on stderr and in log.txt; a full disk is named with its free space."""
import errno
import logging
import sqlite3

import pytest
import torch

from utils.checkpoint import CheckpointError, save_atomic
from utils.disk import disk_full_message, format_bytes, is_disk_full
from utils.run_dir import log_fatal, setup_logging


def test_full_disk_is_recognised_through_wrapping():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc] file write failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x TEXT)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError) as full:
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 5000,)] * 10)
    assert is_disk_full(full.value)


def test_bytes_are_written_plainly():
    assert [format_bytes(n) for n in (512, 12_345_678, 1_500_000_000, 3 * 10**12)] == \
        ["512 B", "12 MB", "1.5 GB", "3.0 TB"]


def test_checkpoint_on_a_full_disk_names_the_free_space(tmp_path, monkeypatch):
    def full_disk(obj, handle, *args, **kwargs):  # what torch.save raises when the file system is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as err:
        save_atomic({"epoch": 2}, tmp_path / "last.pt")
    assert str(err.value).startswith(f"disk full writing {tmp_path / 'last.pt'}: ")
    assert " free on /" in str(err.value) and "no earlier last.pt existed" in str(err.value)


def test_fatal_error_reaches_log_txt_once(tmp_path, capsys):
    setup_logging(tmp_path)
    try:
        line = log_fatal(OSError(errno.ENOSPC, "No space left on device"))
        log_fatal(ValueError("dataset_root is not set"))
    finally:
        for handler in list(logging.getLogger().handlers):
            handler.close()
            logging.getLogger().removeHandler(handler)
    assert line == disk_full_message(tmp_path)
    log_lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [entry.split(" E ", 1)[1] for entry in log_lines] == [line, "dataset_root is not set"]
    err = capsys.readouterr().err
    assert err == f"error: {line}\nerror: dataset_root is not set\n"
