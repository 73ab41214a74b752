"""Why a video file does not open: what its container says, in one line.

OpenCV reports only that it cannot open a file. This module reads the
container's own structure (MP4/MOV boxes, Matroska/WebM elements, AVI chunks)
from the file's first megabyte to name the cause: a missing MP4 index (the
``moov`` box, written last, so a recording or download that stopped early
lacks it), no video track (an audio-only file), or a video codec this OpenCV
build cannot decode. Pure Python, no decoding.
"""
from __future__ import annotations

import struct

HEAD_BYTES = 1 << 20  # how much of a file is read to find its track list
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_UNKNOWN_SIZE = -1
# Matroska element IDs (with their length marker), https://www.matroska.org/technical/elements.html
_SEGMENT, _TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _CODEC_ID = 0x18538067, 0x1654AE6B, 0xAE, 0x83, 0x86
_CLUSTER = 0x1F43B675
_MATROSKA_VIDEO, _MATROSKA_AUDIO = 1, 2


def open_failure(path: str) -> str:
    """The reason OpenCV could not open ``path`` as a video, from its container."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            size = handle.seek(0, 2)
    except OSError as err:
        return f"cannot be opened ({err.strerror or err})"
    if head[4:8] == b"ftyp":
        return _mp4_failure(path, size)
    if head.startswith(_EBML_MAGIC):
        tracks, frames = _matroska_tracks(head, whole=size <= HEAD_BYTES)
        return _tracks_failure(tracks, "Matroska/WebM", frames)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return _tracks_failure(_avi_tracks(head), "AVI")
    return "not a video (unrecognised format)"


def _tracks_failure(tracks: list[tuple[str, str]], container: str, frames: bool = True) -> str:
    """The reason for a container whose tracks are ``(kind, codec)``, kind "video" or "audio"
    (``frames``: whether it holds any frame data)."""
    video = [codec for kind, codec in tracks if kind == "video"]
    if not tracks:
        return f"truncated or corrupt {container} file (no track list in its first {HEAD_BYTES >> 20} MB)"
    if not video:
        return "audio only: the file has no video track"
    if not frames:
        return f"no frames: the {container} file has a video track but no frame in it"
    return (f"its video ({video[0] or 'unnamed codec'}) cannot be decoded by this OpenCV build, or the file is "
            f"corrupt; convert it to H.264 or MPEG-4 to use it")


def _mp4_failure(path: str, size: int) -> str:
    """MP4/MOV: is the ``moov`` box there, and does it hold a video track?"""
    boxes = _top_level_boxes(path, size)
    if "moov" not in boxes:
        return ("truncated MP4/MOV: its index (the 'moov' box) is missing, as when a recording or download "
                "stopped early")
    with open(path, "rb") as handle:
        handle.seek(boxes["moov"][0])
        moov = handle.read(min(boxes["moov"][1], 16 * HEAD_BYTES))
    handlers = {moov[i + 12:i + 16] for i in _find_all(moov, b"hdlr")}
    if b"soun" in handlers and b"vide" not in handlers:
        return "audio only: the file has no video track"
    if b"vide" not in handlers:
        return "no video track (a recording that stopped before its first frame?)"
    return ("its video cannot be decoded by this OpenCV build (a codec such as HEVC or AV1?), or the file is "
            "corrupt; convert it to H.264 or MPEG-4 to use it")


def _top_level_boxes(path: str, size: int) -> dict[str, tuple[int, int]]:
    """Box type -> (offset, size) of the MP4 boxes at the top level, up to the first that is cut off."""
    boxes, offset = {}, 0
    with open(path, "rb") as handle:
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1 and len(header) == 16:  # 64-bit size
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:  # to the end of the file
                length = size - offset
            if length < 8 or offset + length > size:
                break
            boxes.setdefault(kind.decode("latin-1"), (offset, length))
            offset += length
    return boxes


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, start = [], data.find(needle)
    while start >= 0:
        found.append(start)
        start = data.find(needle, start + 1)
    return found


def _avi_tracks(head: bytes) -> list[tuple[str, str]]:
    """(kind, codec) of the AVI stream headers (``strh`` chunks: fccType, then fccHandler)."""
    kinds = {b"vids": "video", b"auds": "audio"}
    return [(kinds.get(head[i + 8:i + 12], "other"), head[i + 12:i + 16].decode("latin-1").strip("\0 "))
            for i in _find_all(head, b"strh")]


def _matroska_tracks(head: bytes, whole: bool) -> tuple[list[tuple[str, str]], bool]:
    """(kind, codec ID) of the TrackEntry elements of a Matroska/WebM file's first bytes, and
    whether it may hold frames (False only when ``head`` is the ``whole`` file and has no Cluster)."""
    segment = _child(head, 0, len(head), _SEGMENT)
    tracks = segment and _child(head, *segment, _TRACKS)
    if not tracks:
        return [], True
    found = []
    for entry in _children(head, *tracks, _TRACK_ENTRY):
        kind = _child(head, *entry, _TRACK_TYPE)
        codec = _child(head, *entry, _CODEC_ID)
        number = int.from_bytes(head[kind[0]:kind[1]], "big") if kind else 0
        found.append(({_MATROSKA_VIDEO: "video", _MATROSKA_AUDIO: "audio"}.get(number, "other"),
                      head[codec[0]:codec[1]].decode("latin-1") if codec else ""))
    return found, not whole or _child(head, *segment, _CLUSTER) is not None


def _vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``at``: (value, its length); None past the data."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    value = int.from_bytes(data[at:at + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (_EBML_UNKNOWN_SIZE if value == (1 << (7 * length)) - 1 else value), length


def _children(data: bytes, start: int, end: int, wanted: int):
    """(start, end) of each child element with ID ``wanted`` between ``start`` and ``end``."""
    at = start
    while at < end:
        element, size = _vint(data, at, True), None
        if element is not None:
            size = _vint(data, at + element[1], False)
        if element is None or size is None:
            return
        body = at + element[1] + size[1]
        stop = end if size[0] == _EBML_UNKNOWN_SIZE else min(end, body + size[0])
        if element[0] == wanted:
            yield body, stop
        at = stop


def _child(data: bytes, start: int, end: int, wanted: int) -> tuple[int, int] | None:
    """(start, end) of the first child element with ID ``wanted``, None when there is none."""
    return next(_children(data, start, end, wanted), None)
