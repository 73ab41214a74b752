"""Read a video file's sampled frames one at a time, never the whole video.

``VideoFrames(path, frames=16)`` (or ``per_second=F``) opens the file with
OpenCV (FFmpeg) and yields the sampled frames (``sample_frames``) as
``Frame``s: index, time, HxWx3 uint8 RGB (or why it does not decode). Only the
frame in hand is in memory. The header's count and rate place the frames; the
reader decodes forward across gaps up to SEEK_GAP frames and seeks across
longer ones. Headers can be wrong (a truncated file lists its full length, a
variable-frame-rate file gives a time base as its rate), so the last sampled
frame is read first; when it does not decode, or not at the time the rate
says, the video is read in two streaming passes instead (count the frames
that decode and keep their timestamps, then take the sampled ones) and
``notes`` says why. A file that does not open raises ``UnreadableVideo`` with
the reason (dataset/video_containers.py). Details: docs/attribution.md.
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from dataset.image_io import MAX_PIXELS, UnreadableFile, file_problem, too_large
from dataset.video_containers import open_failure

# OpenCV warns on stderr about every file it cannot open; the reason is reported here instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
DEFAULT_FRAMES = 16  # frames sampled per video unless told otherwise
SEEK_GAP = 64        # decode forward across gaps up to this many frames, seek across longer ones


def is_video_file(path: str | os.PathLike) -> bool:
    """True when the name ends in one of ``VIDEO_EXTENSIONS``, any case."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


class UnreadableVideo(UnreadableFile):
    """A video file none of whose frames can be read; ``reason`` says why in one line."""


@dataclass(frozen=True)
class Frame:
    index: int                  # position in the video's frames (decode order), from 0
    time: float                 # seconds from the first frame
    image: np.ndarray | None    # HxWx3 uint8 RGB; None when the frame does not decode
    reason: str = ""            # why it does not decode


def sample_frames(times: np.ndarray, frames: int | None = DEFAULT_FRAMES,
                  per_second: float | None = None) -> list[int]:
    """Indices of the frames to take from a video whose frames start at ``times`` (seconds,
    increasing): ``frames`` evenly over its frames, the one at the centre of each of that many
    equal runs of frames (all of a shorter video); or ``per_second``: the frame showing at every
    1/``per_second`` s of its timestamps. Sorted, each once."""
    times = np.asarray(times, dtype=np.float64)
    if per_second is None:
        count = min(frames, times.size)
        return np.floor((np.arange(count) + 0.5) * times.size / count).astype(int).tolist()
    # at least the first frame, also of a one-frame video (no duration)
    targets = np.arange(0.0, max(duration(times), 1e-9), 1.0 / per_second) + times[0]
    # the frame showing at t is the last one starting at or before t (1e-9 s against rounding)
    shown = np.searchsorted(times, targets + 1e-9, side="right") - 1
    return np.unique(np.clip(shown, 0, times.size - 1)).tolist()


def duration(times: np.ndarray) -> float:
    """Seconds from the first frame's start to the last frame's end (it shows for the median gap)."""
    gaps = np.diff(times)
    return float(times[-1] - times[0] + (np.median(gaps) if gaps.size else 0.0))


class VideoFrames:
    """The sampled frames of one video file, read when iterated (see the module docstring).

    After iteration: ``size`` (width, height), ``fps`` (the header's), ``frame_count`` (the header's,
    or the frames counted by decoding), ``notes`` (one line per departure from the header).
    """

    def __init__(self, path: str, frames: int | None = None, per_second: float | None = None,
                 max_pixels: int = MAX_PIXELS):
        if frames is not None and per_second is not None:
            raise ValueError("give frames or per_second, not both")
        if per_second is None and frames is None:
            frames = DEFAULT_FRAMES
        if (frames is not None and frames < 1) or (per_second is not None and not per_second > 0):
            raise ValueError(f"frames must be >= 1 and per_second > 0, got {frames}, {per_second}")
        self.path, self.frames, self.per_second, self.max_pixels = path, frames, per_second, max_pixels
        self.size: tuple[int, int] = (0, 0)
        self.fps = 0.0
        self.frame_count = 0
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        capture = self._open()
        try:
            plan = self._header_plan(capture)
            if plan is not None:
                yield from self._read(capture, *plan, seek=True)
                return
        finally:
            capture.release()
        times = self._decoded_times()
        capture = self._open()
        try:
            yield from self._read(capture, sample_frames(times, self.frames, self.per_second), times, seek=False)
        finally:
            capture.release()

    def _open(self) -> cv2.VideoCapture:
        problem = file_problem(self.path)
        if problem:
            raise UnreadableVideo(self.path, problem)
        capture = cv2.VideoCapture(os.fspath(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise UnreadableVideo(self.path, open_failure(self.path))
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.size[0] * self.size[1] > self.max_pixels:
            capture.release()
            raise UnreadableVideo(self.path, f"frames {too_large(*self.size, self.max_pixels)}")
        return capture

    def _header_plan(self, capture: cv2.VideoCapture) -> tuple[list[int], np.ndarray] | None:
        """(sampled indices, frame times) from the header's count and rate, once the first and the
        last sampled frame decode where the rate puts them; None when they do not."""
        count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
        self.frame_count, self.fps = max(count, 0), fps if fps > 0 else 0.0
        if count <= 0 or not fps > 0 or not capture.grab():
            return None
        start = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        times = np.arange(count) / fps
        indices = sample_frames(times, self.frames, self.per_second)
        last = indices[-1]
        if last > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, last)
            if not capture.grab():
                return None
            elapsed = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000 - start
            if abs(elapsed - times[last]) > max(2 / fps, 0.02 * times[last]):
                return None
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return indices, times

    def _decoded_times(self) -> array:
        """The start time (seconds) of every frame that decodes, in one streaming pass; a note says
        how that differs from the header."""
        capture, times = self._open(), array("d")
        try:
            while capture.grab():
                times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
        finally:
            capture.release()
        if not times:
            raise UnreadableVideo(self.path, "no frames: not one frame of its video stream decodes")
        self.notes.append(self._header_mismatch(len(times), duration(np.frombuffer(times))))
        self.frame_count = len(times)
        return times

    def _header_mismatch(self, count: int, seconds: float) -> str:
        """One line on why the header's count and rate did not place the frames."""
        if not self.frame_count or not self.fps:
            return f"the header gives no frame count or rate: {count} frames counted by decoding"
        listed = self.frame_count / self.fps
        if count == self.frame_count and abs(seconds - listed) <= max(2 / self.fps, 0.02 * listed):
            return f"seeking does not land where the header's {self.fps:g} fps say: frames reached by decoding"
        if seconds < 0.9 * listed:
            return (f"truncated: only {seconds:.2f} s of the {listed:.2f} s its header lists decode "
                    f"({count} of {self.frame_count} frames)")
        return (f"variable frame rate: {count} frames over {seconds:.2f} s, where the header lists "
                f"{self.frame_count} at {self.fps:g} fps; frames placed by their timestamps")

    def _read(self, capture: cv2.VideoCapture, indices: list[int], times, seek: bool) -> Iterator[Frame]:
        """The frames at ``indices`` (sorted), decoding forward and, with ``seek``, seeking across long gaps."""
        position = 0  # index of the frame the next grab() decodes
        for index in indices:
            if seek and index - position > SEEK_GAP:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                position = index
            while position < index and capture.grab():
                position += 1
            decoded = position == index and capture.grab()
            position += decoded
            ok, bgr = capture.retrieve() if decoded else (False, None)
            time = float(times[index] - times[0])
            if ok and bgr is not None:
                yield Frame(index, time, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            else:
                yield Frame(index, time, None, f"frame {index} does not decode")
