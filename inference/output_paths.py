"""Output paths checked against their kind before a tool does any work.

A tool's ``--out`` is a file of one format (test.py: .json, aggregate.py:
.md) or a folder (export.py, estimate_k.py). ``check_file`` refuses another
extension or a directory and tries the file's folder for writing
(inference.predictions.check_output); ``check_folder`` refuses an existing
file or a file-like name and a place where the folder cannot be made. Each
refusal is one OutputError line naming the path and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path

from inference.predictions import OutputError, check_output

FILE_SUFFIXES = {".json", ".csv", ".md", ".tex", ".png", ".txt", ".pt", ".safetensors"}


def check_file(path: str | os.PathLike, flag: str, suffix: str, what: str) -> Path:
    """``path`` for ``what`` (e.g. "the metrics as JSON"), a writable file ending in ``suffix``."""
    path = Path(path)
    if path.is_dir():
        return check_output(path, flag)  # refuses it: a directory
    if path.suffix.lower() != suffix:
        example = path.with_suffix(suffix)
        raise OutputError(f"{flag} {path}: writes {what}, so it takes a {suffix} file; name one, e.g. "
                          f"{flag} {example}")
    return check_output(path, flag)


def check_folder(path: str | os.PathLike, flag: str, what: str) -> Path:
    """``path`` for ``what`` (e.g. "the export"), a folder that exists or can be made, and is writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, but it takes a folder for {what}; name a folder, e.g. "
                          f"{flag} {path.with_suffix('')}_out")
    if not path.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise OutputError(f"{flag} {path} names a {path.suffix} file, but it takes a folder for {what}; name a "
                          f"folder, e.g. {flag} {path.with_suffix('')}")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path} cannot be written ({existing} is not a writable folder); choose a "
                          f"writable place")
    return path
