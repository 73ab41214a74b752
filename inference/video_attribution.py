"""Attribute video files (predict.py's engine for videos): sampled frames -> the model -> per-frame answers.

``attribute_videos`` streams the sampled frames of every video
(dataset/video_frames.py, in DataLoader workers, one video per worker at a
time) through the model in batches and yields one ``VideoResult`` per video
as soon as its last frame is through, in the order videos finish: the used
frames' softmax probabilities over the valid prototypes and their prototype
similarities, the frames skipped and why, the reader's notes. Faces are
cropped as the model was trained and their records kept in the crop cache
(``crop_cache_dir``, as for images). Memory holds one decoded frame per
worker and per video a [F, V] array of the F sampled frames' probabilities,
whatever the video's length. ``inference.predictions.video_rows`` turns a
result into CSV rows.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from dataset.video_frames import FrameItem, VideoEnd, VideoFrameSet


@dataclass
class VideoResult:
    path: str
    frames: list[int] = field(default_factory=list)       # indices of the frames used, in order
    times: list[float] = field(default_factory=list)      # their times (seconds)
    prob: np.ndarray | None = None                        # [F, V] their softmax probabilities
    similarity: np.ndarray | None = None                  # [F] their prototype similarities
    skipped: list[tuple[int, float, str, str]] = field(default_factory=list)  # (frame, time, kind, reason)
    error: str = ""                                       # why no frame could be read at all
    notes: list[str] = field(default_factory=list)
    frame_count: int = 0                                  # frames in the video (header, or counted)
    fps: float = 0.0

    def count(self, kind: str) -> int:
        """Frames skipped for ``kind`` ("no_face" or "unreadable")."""
        return sum(1 for skip in self.skipped if skip[2] == kind)


class _Collector:
    """Per-frame results of the videos in flight, filled batch by batch."""

    def __init__(self, paths: list[str]):
        self.results = {number: VideoResult(path) for number, path in enumerate(paths)}
        self.parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.records: dict[int, dict] = {}

    def add(self, item: FrameItem) -> bool:
        """Note ``item``; True when it goes to the model."""
        if item.new_record is not None:
            self.records.setdefault(item.video, {})[item.frame] = item.new_record
        if item.image is None:
            self.results[item.video].skipped.append((item.frame, item.time, item.skipped, item.reason))
            return False
        self.results[item.video].frames.append(item.frame)
        self.results[item.video].times.append(item.time)
        return True

    def scored(self, items: list[FrameItem], prob: np.ndarray, similarity: np.ndarray) -> None:
        for video in dict.fromkeys(item.video for item in items):
            rows = [i for i, item in enumerate(items) if item.video == video]
            self.parts.setdefault(video, []).append((prob[rows], similarity[rows]))

    def finish(self, end: VideoEnd) -> tuple[VideoResult, dict]:
        """The finished result of ``end``'s video and its new face records."""
        result = self.results.pop(end.video)
        parts = self.parts.pop(end.video, [])
        if parts:
            result.prob = np.concatenate([p for p, _ in parts])
            result.similarity = np.concatenate([s for _, s in parts])
        result.error, result.notes, result.frame_count, result.fps = end.error, end.notes, end.frame_count, end.fps
        return result, self.records.pop(end.video, {})


def attribute_videos(attributor, paths: list[str], frames: int | None = None, per_second: float | None = None,
                     batch_size: int | None = None, num_workers: int | None = None,
                     crop_cache_dir: str | None = None, progress: bool = True) -> Iterator[VideoResult]:
    """One ``VideoResult`` per path of ``paths`` (video files), in the order they finish; ``frames``
    per video sampled evenly or ``per_second`` (dataset/video_io.py), ``batch_size`` frames per
    forward pass (default: the run's test_batch_size)."""
    from tqdm import tqdm

    from dataset.owdfa import shutdown_workers, stream_loader

    cfg = attributor.cfg
    workers = min(cfg.num_workers if num_workers is None else num_workers, len(paths))
    cropper, cache, stored = _face_crops(cfg, paths, crop_cache_dir)
    loader = stream_loader(VideoFrameSet(paths, cfg.image_size, frames, per_second, cropper, stored), workers,
                           pin_memory=attributor.device.type == "cuda")
    collector, batch, ended = _Collector(paths), [], []
    size = batch_size or cfg.test_batch_size
    bar = tqdm(total=len(paths), desc="videos", unit="video", disable=not progress)

    def score(items: list[FrameItem]) -> None:
        if items:
            collector.scored(items, *attributor.frame_outputs(torch.stack([item.image for item in items])))

    def finished(ends: list[VideoEnd]) -> Iterator[VideoResult]:
        for end in ends:
            result, records = collector.finish(end)
            if cache is not None:
                cache.add_frame_records(result.path, records)
            bar.update()
            yield result

    try:
        for item in loader:
            if isinstance(item, VideoEnd):
                ended.append(item)  # its frames came before it: once the batch is scored, it is done
            elif collector.add(item):
                batch.append(item)
            if len(batch) >= size or (ended and not batch):
                score(batch)
                batch = []
                yield from finished(ended)
                ended = []
        score(batch)
        yield from finished(ended)
    finally:
        shutdown_workers(loader)
        bar.close()


def _face_crops(cfg, paths: list[str], crop_cache_dir: str | None):
    """(cropper, crop cache, stored frame records) for a model that crops faces; (None, None, {}) otherwise."""
    if not cfg.crop_face:
        return None, None, {}
    from dataset.crop_cache import CropCache
    from dataset.faces import FaceCropper
    from dataset.owdfa import crop_settings
    from inference.attributor import CACHE_HINT, crop_cache_place

    root, folder = crop_cache_place(paths, crop_cache_dir)
    cache = CropCache(folder, root, crop_settings(cfg), hint=CACHE_HINT)
    return FaceCropper(cache.settings), cache, cache.frame_records(paths)
