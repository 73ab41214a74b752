"""Reading video files: which frames are sampled, that the frame read is the frame asked for (by
seeking and by decoding forward), and one-line reasons for odd files: truncated, audio only, no
frames, variable frame rate, over the pixel limit, not a video."""
import os

import cv2
import numpy as np
import pytest
from video_files import audio_only, audio_only_mp4, vfr_video

from dataset import synthetic
from dataset.protocols import CLASSES
from dataset.video_containers import open_failure
from dataset.video_io import SEEK_GAP, UnreadableVideo, VideoFrames, is_video_file, sample_frames


def moving_frames(count: int, size: int = 48) -> list[np.ndarray]:
    """Frames that differ from each other everywhere: a gradient that drifts, and a bar per frame index."""
    y, x = np.mgrid[:size, :size]
    frames = []
    for t in range(count):
        frame = np.stack([(x * 4 + t * 3) % 256, (y * 4 + t * 7) % 256, np.full_like(x, (t * 11) % 256)], -1)
        frames.append(frame.astype(np.uint8))
    return frames


def nearest_written(frame: np.ndarray, written: list[np.ndarray]) -> int:
    return int(np.argmin([np.abs(frame.astype(int) - w).mean() for w in written]))


def test_sampling_is_even_and_each_frame_once():
    assert sample_frames(np.arange(100) / 25, frames=4) == [12, 37, 62, 87]
    assert sample_frames(np.arange(5) / 25, frames=16) == [0, 1, 2, 3, 4]
    assert sample_frames(np.arange(100) / 25, per_second=5) == list(range(0, 100, 5))
    assert sample_frames(np.arange(10) / 25, per_second=100) == list(range(10))
    assert sample_frames(np.zeros(1), per_second=2) == sample_frames(np.zeros(1), frames=16) == [0]
    # by timestamps: a frame shows until the next one starts
    assert sample_frames(np.array([0, 0.04, 1.0, 1.04, 3.0]), per_second=1) == [0, 2, 3, 4]


@pytest.mark.parametrize("codec", ["mp4v", "MJPG"])
def test_the_frames_read_are_the_frames_sampled(tmp_path, codec):
    written = moving_frames(200)
    path = tmp_path / f"clip{synthetic.CODECS[codec]}"
    assert synthetic.write_clip(path, written, codec) == 200
    for kwargs in ({"frames": 3}, {"frames": 40}, {"per_second": 2.0}):  # gaps over and under SEEK_GAP
        reader = VideoFrames(str(path), **kwargs)
        frames = list(reader)
        wanted = sample_frames(np.arange(200) / synthetic.CLIP_FPS, **{"frames": None, **kwargs})
        assert [f.index for f in frames] == wanted and not reader.notes
        assert [nearest_written(f.image, written) for f in frames] == wanted
        assert [f.time for f in frames] == pytest.approx([i / synthetic.CLIP_FPS for i in wanted])
    assert max(np.diff(sample_frames(np.arange(200), frames=3))) > SEEK_GAP
    assert (reader.size, reader.fps, reader.frame_count) == ((48, 48), synthetic.CLIP_FPS, 200)


def test_truncated_files(tmp_path):
    written = moving_frames(60)
    avi, mp4 = tmp_path / "cut.avi", tmp_path / "cut.mp4"
    for path, codec in ((avi, "MJPG"), (mp4, "mp4v")):
        synthetic.write_clip(path, written, codec)
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    reader = VideoFrames(str(avi), frames=8)
    frames = list(reader)
    assert reader.notes and reader.notes[0].startswith("truncated: only ")
    decoded = reader.frame_count
    assert 10 < decoded < 60 and f"({decoded} of 60 frames)" in reader.notes[0]
    assert [f.index for f in frames] == sample_frames(np.arange(decoded), frames=8)
    assert [nearest_written(f.image, written) for f in frames] == [f.index for f in frames]
    with pytest.raises(UnreadableVideo, match="truncated MP4/MOV: its index \\(the 'moov' box\\) is missing"):
        list(VideoFrames(str(mp4)))


def test_variable_frame_rate_is_read_by_timestamps(tmp_path):
    path = tmp_path / "vfr.mkv"
    written = vfr_video(path, [0, 40, 80, 400, 420, 440, 1500, 1510, 1520, 1530, 3000, 3040])
    reader = VideoFrames(str(path), per_second=1.0)
    frames = list(reader)
    assert [f.index for f in frames] == [0, 5, 9, 10]  # showing at 0, 1, 2 and 3 s
    assert [f.time for f in frames] == pytest.approx([0, 0.44, 1.53, 3.0])
    assert [nearest_written(f.image, written) for f in frames] == [0, 5, 9, 10]
    assert reader.notes == ["variable frame rate: 12 frames over 3.08 s, where the header lists 3080 at 1000 fps; "
                            "frames placed by their timestamps"]
    assert [f.index for f in VideoFrames(str(path), frames=4)] == [1, 4, 7, 10]


def test_files_that_give_no_frame_say_why(tmp_path):
    audio_only(tmp_path / "song.webm")
    audio_only_mp4(tmp_path / "song.mp4")
    empty = {}
    for codec in ("mp4v", "MJPG"):
        path = tmp_path / f"empty{synthetic.CODECS[codec]}"
        cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25, (32, 32)).release()
        empty[codec] = path
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "zero.mkv").write_bytes(b"")
    synthetic.write_clip(tmp_path / "small.avi", moving_frames(3), "MJPG")
    cases = {tmp_path / "song.webm": "audio only: the file has no video track",
             tmp_path / "song.mp4": "audio only: the file has no video track",
             empty["mp4v"]: "no video track (a recording that stopped before its first frame?)",
             empty["MJPG"]: "no frames: not one frame of its video stream decodes",
             tmp_path / "notes.mp4": "not a video (unrecognised format)",
             tmp_path / "zero.mkv": "empty file (0 bytes)",
             tmp_path / "missing.mp4": "missing file",
             tmp_path: "is a directory"}
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.mp4")
        cases[tmp_path / "pipe.mp4"] = "a named pipe, not a regular file: skipped"
    for path, reason in cases.items():
        with pytest.raises(UnreadableVideo) as caught:
            list(VideoFrames(str(path)))
        assert caught.value.reason == reason, path
    with pytest.raises(UnreadableVideo, match=r"^.*: frames too large: 48x48 = 0.0 MP, over the 0.0 MP limit"):
        list(VideoFrames(str(tmp_path / "small.avi"), max_pixels=1000))


def test_a_codec_opencv_cannot_decode_is_named(tmp_path):
    path = tmp_path / "clip.mkv"
    synthetic.write_clip(path, moving_frames(3), "FFV1")
    path.write_bytes(path.read_bytes().replace(b"V_FFV1", b"V_XYZW", 1))  # a codec ID no decoder knows
    with pytest.raises(UnreadableVideo) as caught:
        list(VideoFrames(str(path)))
    assert caught.value.reason == open_failure(str(path)) == (
        "its video (V_XYZW) cannot be decoded by this OpenCV build, or the file is corrupt; convert it to H.264 "
        "or MPEG-4 to use it")


def test_video_names():
    assert all(map(is_video_file, ["a.mp4", "b.AVI", "c.mov", "d.mkv", "e.WebM"]))
    assert not any(map(is_video_file, ["a.png", "b.mp3", "mp4"]))


def test_clips_keep_one_identity_and_one_trace():
    swap = next(c for c in CLASSES if c.family == "Swap")
    clip = list(synthetic.make_clip(swap, 0, 8, 48, seed=3))
    again = list(synthetic.make_clip(swap, 0, 8, 48, seed=3))
    other = list(synthetic.make_clip(swap, 1, 8, 48, seed=3))
    assert all(np.array_equal(a, b) for a, b in zip(clip, again))
    step = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(clip, clip[1:])])
    apart = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(clip, other)])
    assert 0 < step < apart / 4
    assert not any(np.array_equal(clip[0], synthetic.make_image(swap, i, 48, 3)) for i in range(4))
