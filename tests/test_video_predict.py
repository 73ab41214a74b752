"""predict.py on videos with the shared tiny run: a clip of one class's images is attributed to that
class, frame by frame as the images are; bad files each get a row with their reason and the run goes
on; a face-cropping model skips frames without a face and keeps the records in the crop cache;
memory does not grow with a clip's length; test.py --by_video on the mini clips' frame folders."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import run_cli
from video_files import audio_only

import predict as predict_cli
import test as test_cli
from dataset import synthetic
from dataset.faces import FaceCropper
from dataset.image_io import read_rgb
from inference.attributor import Attributor
from inference.predictions import PREDICT_COLUMNS, video_rows
from inference.video_attribution import attribute_videos
from utils.checkpoint import load_checkpoint, save_atomic


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def image_rows(known_k_run, mini_root):
    """The run's row for every mini image, by path (predict_paths, as predict.py computes them)."""
    run_dir, _ = known_k_run
    paths = sorted(str(p) for p in mini_root.rglob("*.png"))
    return dict(zip(paths, Attributor.load(str(run_dir), "cpu").predict_paths(paths, progress=False)))


@pytest.fixture(scope="module")
def one_class(image_rows):
    """(a prototype's name, images of one class that the run names with it): the largest such group
    outside the real class. The tiny run knows little and may name a class by a novel prototype, so the
    clip is made of images it names alike: the video path is under test, not the model."""
    groups = {}
    for path, row in image_rows.items():
        if row["is_real"] != "true":
            groups.setdefault((Path(path).parent.name, row["nearest"]), []).append(path)
    (_, name), paths = max(groups.items(), key=lambda item: len(item[1]))
    assert len(paths) >= 3, {key: len(value) for key, value in groups.items()}
    return name, paths


def test_a_clip_of_one_class_is_attributed_to_it_frame_by_frame(known_k_run, image_rows, one_class, tmp_path):
    run_dir, _ = known_k_run
    name, paths = one_class
    clip = tmp_path / "clip.mkv"
    synthetic.write_clip(clip, [read_rgb(p) for p in paths], "FFV1")  # lossless: the frames are the images
    out = tmp_path / "p.csv"
    result = run_cli("predict.py", "--ckpt", str(run_dir), str(clip), "--frames", str(len(paths)), "--per_frame",
                     "--no_unknown", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    columns, (video, *frames) = read_csv(out)
    assert tuple(columns) == PREDICT_COLUMNS
    assert (video["kind"], video["predicted"], video["nearest"], video["is_real"]) == ("video", name, name, "false")
    assert (video["frames_used"], video["frames_no_face"], video["frames_unreadable"]) == (str(len(paths)), "0", "0")
    assert video["agreement"] == "1.0000" and not video["error"] and not video["note"]
    mean = np.mean([float(image_rows[p]["confidence"]) for p in paths])
    assert float(video["confidence"]) == pytest.approx(mean, abs=1e-4)
    assert [f["frame"] for f in frames] == [str(i) for i in range(len(paths))]
    assert [f["time"] for f in frames] == [f"{i / synthetic.CLIP_FPS:.3f}" for i in range(len(paths))]
    for frame, path in zip(frames, paths):
        assert frame["kind"] == "frame"
        assert {k: frame[k] for k in ("nearest", "confidence", "similarity", "top3")} == \
            {k: image_rows[path][k] for k in ("nearest", "confidence", "similarity", "top3")}
    assert "1 videos: 1 attributed, 0 unknown, 0 without an answer" in result.stdout
    assert f"frames: {len(paths)} used, 0 without a face, 0 unreadable" in result.stdout


def test_bad_files_each_get_a_row_and_the_run_goes_on(known_k_run, one_class, tmp_path):
    run_dir, _ = known_k_run
    _, paths = one_class
    folder = tmp_path / "in"
    folder.mkdir()
    frames = ([read_rgb(p) for p in paths] * 24)[:24]  # a truncated half still holds 8 frames
    for name, codec in (("good.mp4", "mp4v"), ("cut.mp4", "mp4v"), ("cut.avi", "MJPG")):
        synthetic.write_clip(folder / name, frames, codec)
    for name in ("cut.mp4", "cut.avi"):
        (folder / name).write_bytes((folder / name).read_bytes()[:(folder / name).stat().st_size // 2])
    audio_only(folder / "song.webm")
    shutil.copy(paths[0], folder / "still.png")
    out = tmp_path / "p.csv"
    result = run_cli("predict.py", "--ckpt", str(run_dir), str(folder), "--frames", "8", "--device", "cpu",
                     "--num_workers", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    _, rows = read_csv(out)
    row = {Path(r["path"]).name: r for r in rows}
    assert [Path(r["path"]).name for r in rows] == ["cut.avi", "cut.mp4", "good.mp4", "song.webm", "still.png"]
    assert row["still.png"]["kind"] == "image" and row["still.png"]["nearest"]
    assert row["good.mp4"]["nearest"] and row["good.mp4"]["frames_used"] == "8" and not row["good.mp4"]["note"]
    assert row["cut.avi"]["nearest"] and row["cut.avi"]["frames_used"] == "8"
    assert row["cut.avi"]["note"].startswith("truncated: only ") and not row["cut.avi"]["error"]
    assert row["cut.mp4"]["error"].startswith("truncated MP4/MOV: its index (the 'moov' box) is missing")
    assert row["song.webm"]["error"] == "audio only: the file has no video track"
    for name in ("cut.mp4", "song.webm"):
        assert (row[name]["predicted"], row[name]["frames_used"]) == ("", "0")
    answered = sum(row[name]["predicted"] == "unknown" for name in ("good.mp4", "cut.avi"))
    assert f"4 videos: {2 - answered} attributed, {answered} unknown, 2 without an answer" in result.stdout
    assert "frames: 16 used, 0 without a face, 0 unreadable" in result.stdout and "1 images:" in result.stdout


@pytest.fixture(scope="module")
def face_model(known_k_run, tmp_path_factory):
    """The tiny run's last.pt as a model that crops faces (its config's crop_face set)."""
    run_dir, _ = known_k_run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    state["config"]["crop_face"] = True
    path = tmp_path_factory.mktemp("face_model") / "last.pt"
    save_atomic(state, path)
    return Attributor.load(str(path), "cpu")


def test_frames_without_a_face_are_skipped_and_face_records_cached(face_model, one_class, tmp_path, monkeypatch):
    _, paths = one_class
    no_face, face = tmp_path / "no_face.avi", tmp_path / "face.avi"
    synthetic.write_clip(no_face, [read_rgb(p) for p in paths], "MJPG")
    astronaut = skimage.data.astronaut()
    synthetic.write_clip(face, [np.roll(astronaut, 3 * t, axis=1) for t in range(4)], "MJPG")
    cache = tmp_path / "cache"

    def rows():
        results = attribute_videos(face_model, [str(no_face), str(face)], frames=4, num_workers=0,
                                   crop_cache_dir=str(cache), progress=False)
        return {Path(r.path).name: video_rows(r, face_model.names, face_model.real, None, per_frame=True)
                for r in results}

    first = rows()
    video, *frames = first["no_face.avi"]
    assert video["error"] == "no face found in any of the 4 sampled frames"
    assert (video["frames_used"], video["frames_no_face"], video["predicted"]) == ("0", "4", "")
    assert [f["error"] for f in frames] == ["no face found"] * 4
    video, *frames = first["face.avi"]
    assert (video["frames_used"], video["frames_no_face"], video["error"]) == ("4", "0", "")
    assert video["nearest"] and all(f["nearest"] and not f["error"] for f in frames)
    monkeypatch.setattr(FaceCropper, "detect", lambda *_: pytest.fail("detected again: the cache was not used"))
    assert rows() == first


PEAK_PER_CLIP = """import resource, sys
from inference.attributor import Attributor
from inference.predictions import video_rows
from inference.video_attribution import attribute_videos

attributor = Attributor.load(sys.argv[1], "cpu")
for clip in sys.argv[2:]:
    for result in attribute_videos(attributor, [clip], per_second=5.0, num_workers=0, progress=False):
        row = video_rows(result, attributor.names, attributor.real, attributor.abstain)[0]
    print(row["frames_used"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_stays_flat_on_a_long_clip(known_k_run, tmp_path):
    """A 90-frame clip, then a 900-frame one, at 384 px, in one fresh process, 5 frames a second
    sampled (18 and 180; all 900 decoded): holding the long clip's sampled frames alone would take
    162 x 442 KB = 72 MB more; the peak grows by less than 30 MB."""
    run_dir, _ = known_k_run
    y, x = np.mgrid[:384, :384]
    pattern = np.stack([x % 256, 2 * y % 256, (x + y) % 256], -1).astype(np.uint8)
    clips = [tmp_path / f"{count}.mp4" for count in (90, 900)]
    for clip, count in zip(clips, (90, 900)):
        synthetic.write_clip(clip, (np.roll(pattern, t, axis=1) for t in range(count)), "mp4v")
    result = run_cli("-c", PEAK_PER_CLIP, str(run_dir), *map(str, clips))
    assert result.returncode == 0, result.stderr[-3000:]
    (used_short, peak_short), (used_long, peak_long) = [line.split() for line in result.stdout.splitlines()[-2:]]
    assert (used_short, used_long) == ("18", "180")
    assert (int(peak_long) - int(peak_short)) / 1024 < 30, (peak_short, peak_long)


def test_test_py_by_video_on_the_clip_frame_folders(known_k_run, tmp_path, capsys):
    run_dir, _ = known_k_run
    frames = tmp_path / "frames"
    synthetic.generate_clips(tmp_path / "clips", clips=2, frames=6, size=32, seed=1, frame_folders=frames)
    assert sorted(p.name for p in (frames / "1_Swap_Deepfakes").iterdir()) == ["00000", "00001"]
    assert len(list((frames / "1_Swap_Deepfakes" / "00001").glob("*.png"))) == 6
    assert test_cli.main(["--ckpt", str(run_dir), "--dataset_root", str(frames), "--allow_split_change",
                          "--by_video", "--video_rule", "vote", "--out", str(tmp_path / "m.json"),
                          "--save_predictions", str(tmp_path / "p.csv")]) == 0
    result = capsys.readouterr()
    metrics = json.loads((tmp_path / "m.json").read_text())
    videos = metrics["by_video"]
    _, rows = read_csv(tmp_path / "p.csv")
    folders = [str(Path(r["path"]).parent) for r in rows]
    assert videos["videos"] == videos["num_test"] == len(set(folders)) < len(rows) == metrics["num_test"]
    assert videos["frames_max"] == max(folders.count(f) for f in set(folders)) > 1 and videos["rule"] == "vote"
    table = result.out.split(f"by video: {videos['videos']} videos of {videos['frames_min']}-"
                                f"{videos['frames_max']} test frames")[1]
    assert f"ACC  {100 * videos['all_acc']:>6.1f}" in table


def test_sampling_flags_are_checked_before_anything_loads(tmp_path, capsys):
    model = ["--ckpt", str(tmp_path / "none")]
    for flags, words in ((["--frames", "0"], "error: --frames 0: sample at least 1 frame per video"),
                         (["--fps", "-2"], "error: --fps -2.0 is not a rate; give frames per second above 0")):
        assert predict_cli.main([*model, str(tmp_path), *flags]) == 2
        assert words in capsys.readouterr().err
    for main, argv, words in ((predict_cli.main, [*model, str(tmp_path), "--frames", "4", "--fps", "2"],
                               "argument --fps: not allowed with argument --frames"),
                              (test_cli.main, [*model, "--video_rule", "vote"],
                               "--video_rule applies only with --by_video")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and words in capsys.readouterr().err
