"""Which video each frame of a dataset comes from, read from the folder and file names.

A frame's video is (1) the folder it sits in, when that is a folder inside its
class folder (``<class folder>/<video>/<frame>.png``: the mini clips' frame
folders, FaceForensics++ or Celeb-DF frames as extraction tools write them),
else (2) its file name without a trailing frame number
(``<class folder>/<video>_<n>.png``, ``<video>-frame<n>.jpg``), else (3) the
image alone, a video of one frame. ``test.py --by_video`` reports how many
videos the names gave, so a dataset without such names shows as one frame
per video.
"""
from __future__ import annotations

import os
import re

_NUMBERED = re.compile(r"^(?P<video>.+?)[_-](?:frame[_-]?)?\d+$", re.IGNORECASE)


def video_of(path: str, root: str, class_folder: str) -> str:
    """The video of the image ``path`` (under ``root``, in ``class_folder``, relative to ``root``, '/'
    separated), as a path relative to ``root``: a folder, a file name stem, or the image itself."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    inside = rel[len(class_folder) + 1:] if rel.startswith(class_folder + "/") else rel
    folder, _, name = inside.rpartition("/")
    if folder:
        return rel[:len(rel) - len(name) - 1]
    match = _NUMBERED.match(os.path.splitext(name)[0])
    return rel[:len(rel) - len(name)] + match["video"] if match else rel


def class_folder_of(path: str, root: str, folders: dict[int, str] | None, label: int) -> str:
    """The class folder of an image of original class ``label``: the class table's folder
    (``folders``, a nested layout) or the first folder below ``root``."""
    if folders:
        return folders[label]
    return os.path.relpath(path, root).replace(os.sep, "/").split("/")[0]
