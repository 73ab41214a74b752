"""Hand-built container files for the video tests, what OpenCV's writer cannot make: Matroska files
with audio only or a variable frame rate (each frame at a timestamp of its own), an audio-only MP4."""
from __future__ import annotations

import struct

import cv2
import numpy as np


def _size(n: int) -> bytes:
    """EBML variable-length size of ``n``."""
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | n).to_bytes(length, "big")
    raise ValueError(n)


def element(element_id: int, payload) -> bytes:
    """One EBML element: an int, float, str, bytes or a list of elements as its payload."""
    if isinstance(payload, bool) or not isinstance(payload, (int, float, str, bytes, list)):
        raise TypeError(type(payload))
    if isinstance(payload, int):
        payload = payload.to_bytes(max(1, (payload.bit_length() + 7) // 8), "big")
    elif isinstance(payload, float):
        payload = struct.pack(">d", payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    elif isinstance(payload, list):
        payload = b"".join(payload)
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _size(len(payload)) + payload


def matroska(track: list[bytes], blocks: list[tuple[int, bytes]], duration_ms: float, doc_type="matroska") -> bytes:
    """A file of one track (TrackEntry children) whose ``blocks`` are (timestamp in ms, data), one cluster."""
    header = element(0x1A45DFA3, [element(0x4282, doc_type), element(0x4287, 4), element(0x4285, 2)])
    info = element(0x1549A966, [element(0x2AD7B1, 1_000_000), element(0x4489, float(duration_ms))])
    cluster = element(0x1F43B675, [element(0xE7, 0)] + [
        element(0xA3, b"\x81" + struct.pack(">h", time) + b"\x80" + data) for time, data in blocks])
    return header + element(0x18538067, [info, element(0x1654AE6B, [element(0xAE, track)]), cluster])


def vfr_video(path, times_ms: list[int], size: int = 64) -> list[np.ndarray]:
    """An MJPEG Matroska file with a frame at each of ``times_ms``; frame i is flat grey 20 i. Returns the frames."""
    frames = [np.full((size, size, 3), 20 * i, np.uint8) for i in range(len(times_ms))]
    track = [element(0xD7, 1), element(0x73C5, 1), element(0x83, 1), element(0x86, "V_MJPEG"),
             element(0xE0, [element(0xB0, size), element(0xBA, size)])]
    blocks = [(t, cv2.imencode(".jpg", f)[1].tobytes()) for t, f in zip(times_ms, frames)]
    path.write_bytes(matroska(track, blocks, times_ms[-1] + 40))
    return frames


def audio_only(path, doc_type: str = "webm") -> None:
    """Two seconds of silent 8 kHz PCM and no video track."""
    track = [element(0xD7, 1), element(0x73C5, 1), element(0x83, 2), element(0x86, "A_PCM/INT/LIT"),
             element(0xE1, [element(0xB5, 8000.0), element(0x9F, 1), element(0x6264, 16)])]
    blocks = [(t, np.zeros(800, np.int16).tobytes()) for t in range(0, 2000, 100)]
    path.write_bytes(matroska(track, blocks, 2000, doc_type))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def audio_only_mp4(path) -> None:
    """An MP4 whose one track is sound: ftyp, then moov > trak > mdia > hdlr of handler type 'soun'."""
    handler = _box(b"hdlr", bytes(8) + b"soun" + bytes(12) + b"sound\0")
    path.write_bytes(_box(b"ftyp", b"isom" + bytes(4) + b"isommp41")
                     + _box(b"moov", _box(b"trak", _box(b"mdia", handler))) + _box(b"mdat", bytes(64)))
