"""Video files as a stream of model inputs: the sampled frames, face-cropped, in the evaluation view.

``VideoFrameSet`` is an IterableDataset for a DataLoader without batching
(``dataset.owdfa.stream_loader``): each worker takes every n-th video and, per
video, yields a ``FrameItem`` per sampled frame (dataset/video_io.py), then a
``VideoEnd``. A frame is cropped as a training image is: the crop cache's
record when it has one (``records``), else a detection whose record travels
back in the item for the main process to store. A frame in which no face is
found is skipped and counted, where an image would be used whole: a video's
frames without a face (a cutaway, a title) say nothing about a face forgery,
and its other frames remain. Without face crops (``cropper`` None) every frame
is used whole, as the model was trained.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch.utils.data import IterableDataset, get_worker_info

from dataset.faces import FaceCropper, FaceRecord
from dataset.transforms import EvalView
from dataset.video_io import Frame, UnreadableVideo, VideoFrames


@dataclass
class FrameItem:
    video: int                        # position of the video in the set's list
    frame: int                        # frame index in the video
    time: float                       # seconds from its first frame
    image: torch.Tensor | None        # uint8 [3, S, S]; None when skipped
    skipped: str = ""                 # "", "no_face" or "unreadable"
    reason: str = ""                  # why it is skipped
    new_record: FaceRecord | None = None  # a detection the crop cache does not hold yet


@dataclass
class VideoEnd:
    video: int
    error: str = ""                   # why none of its frames could be read ("" when they were)
    notes: list[str] = field(default_factory=list)  # one line per oddity of the file, see VideoFrames
    frame_count: int = 0
    fps: float = 0.0


class VideoFrameSet(IterableDataset):
    """The sampled frames of ``videos`` (``frames`` per video or ``per_second``) at ``image_size``;
    ``cropper`` crops faces (None: whole frames), starting from ``records`` (video -> frame index ->
    record, from ``CropCache.frame_records``)."""

    def __init__(self, videos: list[str], image_size: int, frames: int | None = None, per_second: float | None = None,
                 cropper: FaceCropper | None = None, records: Mapping[str, Mapping[int, FaceRecord]] | None = None):
        self.videos, self.frames, self.per_second = videos, frames, per_second
        self.cropper, self.records = cropper, records or {}
        self.view = EvalView(image_size)

    def __iter__(self) -> Iterator[FrameItem | VideoEnd]:
        worker = get_worker_info()
        start, step = (worker.id, worker.num_workers) if worker else (0, 1)
        for number in range(start, len(self.videos), step):
            yield from self._video(number)

    def _video(self, number: int) -> Iterator[FrameItem | VideoEnd]:
        path = self.videos[number]
        reader = VideoFrames(path, self.frames, self.per_second)
        try:
            for frame in reader:
                yield self._item(number, frame, self.records.get(path, {}))
        except UnreadableVideo as err:
            yield VideoEnd(number, err.reason, reader.notes)
            return
        notes = list(reader.notes)
        detect_side = self.cropper.settings.detect_max_side if self.cropper else 0
        if self.cropper and max(reader.size) > detect_side:
            notes.append(f"faces found on a copy of its {reader.size[0]}x{reader.size[1]} frames scaled to "
                         f"{detect_side} px")
        yield VideoEnd(number, "", notes, reader.frame_count, reader.fps)

    def _item(self, number: int, frame: Frame, stored: Mapping[int, FaceRecord]) -> FrameItem:
        if frame.image is None:
            return FrameItem(number, frame.index, frame.time, None, "unreadable", frame.reason)
        if self.cropper is None:
            return FrameItem(number, frame.index, frame.time, self.view(frame.image))
        record = stored.get(frame.index)
        new = None
        if record is None:
            record = new = self.cropper.detect(frame.image)
        if record.status != "face":
            return FrameItem(number, frame.index, frame.time, None, "no_face", "no face found", new)
        face = self.cropper.crop(frame.image, record)
        return FrameItem(number, frame.index, frame.time, self.view(face), new_record=new)

