"""Scan an OWDFA-style folder tree into class -> image paths, without opening images.

Layout (METHOD.md section 2): top-level folders ``<index>_<Type>_<Method>``
(``0_Real_CelebDF``, ``17_Generate_StyleGAN``); the integer prefix is the
class and several folders may share it. A class table with a ``folder``
column names one folder per class instead, at any depth (the OW-DFA release's
``<Family>/<Method>/<Source>``). Images (.jpg/.jpeg/.png, any case)
are found recursively. Folders and files are sorted, so the result never
depends on file-system order (METHOD.md pitfall). Hidden entries (names
starting with ".", e.g. macOS ``._x.jpg`` resource forks) are ignored;
symlinked folders are followed, except a link back to a folder above it (a
symlink loop), which is skipped with a warning naming it. Names
are kept as the OS gives them (undecodable bytes as surrogate escapes);
whether a file is a regular, readable image is decided when it is read
(dataset/image_io.py), so the scan never opens a file.
"""
from __future__ import annotations

import os
import re
import warnings

from dataset.image_io import is_image_file

_CLASS_PREFIX = re.compile(r"(\d+)(?:_|$)")


def parse_class_index(folder_name: str) -> int | None:
    """``"17_Generate_StyleGAN"`` -> 17; None when the name has no integer prefix."""
    match = _CLASS_PREFIX.match(folder_name)
    return int(match.group(1)) if match else None


def scan_dataset(root: str, class_folders: dict[int, str] | None = None) -> dict[int, list[tuple[str, list[str]]]]:
    """Class index -> [(folder name, sorted image paths under it)], classes and folders sorted.

    A folder without an index prefix is skipped and a folder without images is
    kept with an empty list; both give a warning naming the folder.
    ``class_folders`` (class index -> folder below ``root``, from a class table)
    scans exactly those folders; a missing one is kept with an empty list.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {root!r} is not a folder")
    if class_folders is not None:
        return {index: [(name, _find_images(os.path.join(root, *name.split("/"))))]
                for index, name in sorted(class_folders.items())}
    classes: dict[int, list[tuple[str, list[str]]]] = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(folder):
            continue
        index = parse_class_index(name)
        if index is None:
            warnings.warn(f"skipping folder {folder!r}: its name does not start with a class index "
                          "(expected <index>_<Type>_<Method>, e.g. 0_Real_CelebDF)", stacklevel=2)
            continue
        images = _find_images(folder)
        if not images:
            warnings.warn(f"folder {folder!r} (class {index}) has no .jpg/.jpeg/.png images", stacklevel=2)
        classes.setdefault(index, []).append((name, images))
    return dict(sorted(classes.items()))


def labels_by_path(classes: dict[int, list[tuple[str, list[str]]]]) -> dict[str, int]:
    """Image path -> class index, from a ``scan_dataset`` result."""
    return {path: index for index, folders in classes.items() for _, paths in folders for path in paths}


def _find_images(folder: str) -> list[str]:
    found = []  # (path components below folder, path)
    above = {folder: frozenset({_identity(folder)})}  # folder -> (device, inode) of it and its parents
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        kept = []
        for d in (d for d in subdirs if not d.startswith(".")):
            path = os.path.join(directory, d)
            identity = _identity(path)
            if identity in above[directory]:
                warnings.warn(f"skipping {path!r}: a symbolic link loop (it leads back to {directory!r} or a "
                              f"folder above it)", stacklevel=3)
                continue
            above[path] = above[directory] | {identity}
            kept.append(d)
        subdirs[:] = kept
        parts = os.path.relpath(directory, folder).split(os.sep) if directory != folder else []
        found.extend((parts + [f], os.path.join(directory, f))
                     for f in files if not f.startswith(".") and is_image_file(f))
    # Sorting on components keeps the order independent of the OS path separator.
    return [path for _, path in sorted(found)]


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # a dangling or looping link: os.walk cannot enter it either
        return None
    return st.st_dev, st.st_ino
