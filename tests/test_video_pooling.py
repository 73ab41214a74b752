"""A video's answer from its frames under each rule, hand-computed; video metrics over test frames
grouped by their video; which video a frame's name gives; frame records in the crop cache."""
import os
from types import SimpleNamespace

import numpy as np
import pytest

from dataset.crop_cache import CropCache
from dataset.faces import FaceRecord
from dataset.video_groups import class_folder_of, video_of
from inference.evaluate import video_metrics
from inference.video_pooling import pool_frames, rule_scores

# five frames over three prototypes: two sure of 0, three unsure of 1
FRAMES = np.array([[0.95, 0.03, 0.02], [0.95, 0.03, 0.02], [0.30, 0.40, 0.30], [0.30, 0.40, 0.30],
                   [0.30, 0.40, 0.30]])


def test_the_rules_differ_where_they_should():
    mean = FRAMES.mean(axis=0)  # 0.56, 0.252, 0.188
    assert rule_scores(FRAMES, "mean") == pytest.approx(mean)
    assert pool_frames(FRAMES, "mean").index == 0
    vote = pool_frames(FRAMES, "vote")
    assert vote.index == 1 and vote.agreement == pytest.approx(0.6) and vote.probability == pytest.approx(0.252)
    weight = np.array([0.95, 0.95, 0.4, 0.4, 0.4])
    assert rule_scores(FRAMES, "weighted") == pytest.approx(weight @ FRAMES / weight.sum())
    answer = pool_frames(FRAMES, "weighted", similarity=np.array([0.5, 0.7, 0.1, 0.2, 0.3]))
    assert answer.index == 0 and answer.agreement == pytest.approx(0.4) and answer.similarity == pytest.approx(0.36)
    assert answer.probability == pytest.approx(0.56)
    with pytest.raises(ValueError, match="unknown video rule 'median'; choose one of mean, vote, weighted"):
        rule_scores(FRAMES, "median")


def test_a_tied_vote_goes_to_the_higher_mean_probability():
    tied = np.array([[0.6, 0.4], [0.45, 0.55], [0.9, 0.1], [0.48, 0.52]])
    assert pool_frames(tied, "vote").index == 0  # 2 votes each; mean 0.61 against 0.39
    assert pool_frames(tied[1:2], "vote").index == 1


def test_video_names():
    root = os.path.join(os.sep, "data")
    frame = os.path.join(root, "1_Swap_Deepfakes", "000_003", "0012.png")
    assert video_of(frame, root, "1_Swap_Deepfakes") == "1_Swap_Deepfakes/000_003"
    assert video_of(os.path.join(root, "1_Swap_Deepfakes", "000_003_0012.png"), root,
                    "1_Swap_Deepfakes") == "1_Swap_Deepfakes/000_003"
    assert video_of(os.path.join(root, "7_X", "clip-frame7.jpg"), root, "7_X") == "7_X/clip"
    assert video_of(os.path.join(root, "7_X", "00012.png"), root, "7_X") == "7_X/00012.png"
    nested = os.path.join(root, "IdentitySwap", "Deepfakes", "faceforensics", "v1", "3.png")
    assert class_folder_of(nested, root, {1: "IdentitySwap/Deepfakes/faceforensics"}, 1) == \
        "IdentitySwap/Deepfakes/faceforensics"
    assert video_of(nested, root, "IdentitySwap/Deepfakes/faceforensics") == "IdentitySwap/Deepfakes/faceforensics/v1"
    assert class_folder_of(frame, root, None, 1) == "1_Swap_Deepfakes"


def test_video_metrics_pool_each_videos_frames(tmp_path):
    root = str(tmp_path)
    # class 0 (known): video a right on 2 of 3 frames, video b wrong on its one frame; class 1 (novel): video c
    frames = [("0_Real_X/a/0.png", 0, [0.9, 0.1]), ("0_Real_X/a/1.png", 0, [0.8, 0.2]),
              ("0_Real_X/a/2.png", 0, [0.4, 0.6]), ("0_Real_X/b/0.png", 0, [0.3, 0.7]),
              ("1_Swap_Y/c/0.png", 1, [0.2, 0.8]), ("1_Swap_Y/c/1.png", 1, [0.6, 0.4])]
    split = SimpleNamespace(test_paths=[os.path.join(root, p) for p, _, _ in frames],
                            test_orig=np.array([label for _, label, _ in frames]), num_known=1,
                            space=SimpleNamespace(table=SimpleNamespace(class_folders=lambda: None)))
    out = {"index": np.arange(6), "label": split.test_orig, "prob": np.array([p for _, _, p in frames])}
    metrics = video_metrics(out, split, root, "mean")
    assert (metrics["videos"], metrics["frames_min"], metrics["frames_median"], metrics["frames_max"]) == (3, 1, 2, 3)
    assert metrics["known_acc"] == pytest.approx(0.5)  # a -> 0 (mean 0.7), b -> 1
    assert metrics["num_test"] == 3 and metrics["rule"] == "mean"
    assert metrics["conf_known"] == pytest.approx((0.7 + 0.7) / 2)


def test_frame_records_live_beside_image_records_until_the_video_changes(tmp_path):
    video = tmp_path / "data" / "clip.mp4"
    video.parent.mkdir()
    video.write_bytes(b"0" * 100)
    cache = CropCache(tmp_path / "cache", tmp_path / "data")
    assert cache.frame_records([str(video)]) == {str(video): {}}
    records = {3: FaceRecord("face", (1, 2, 30, 40), num_faces=1), 17: FaceRecord("no_face")}
    cache.add_frame_records(str(video), records)
    assert cache.frame_records([str(video)]) == {str(video): records}
    os.utime(video, ns=(1, 1))
    assert cache.frame_records([str(video)]) == {str(video): {}}


def video_result(similarity, skipped=()):
    from inference.video_attribution import VideoResult

    return VideoResult("v.mp4", frames=[0, 5, 10], times=[0.0, 0.2, 0.4], prob=FRAMES[[0, 2, 3]],
                       similarity=np.asarray(similarity), skipped=list(skipped), notes=["a", "b"])


def test_a_video_row_abstains_as_an_image_row_would():
    from inference.predictions import video_rows

    names, threshold = ["REAL Real", "S1 Deepfakes", "novel-2"], {"threshold": 0.4}
    far = video_rows(video_result([0.5, 0.3, 0.3]), names, {0}, threshold)[0]  # mean similarity 0.367
    assert (far["predicted"], far["nearest"], far["is_real"]) == ("unknown", "REAL Real", "false")
    near = video_rows(video_result([0.5, 0.4, 0.4]), names, {0}, threshold)[0]
    assert (near["predicted"], near["is_real"], near["similarity"]) == ("REAL Real", "true", "0.4333")
    assert near["confidence"] == "0.5167" and near["agreement"] == "0.3333"  # mean of 0.95, 0.3, 0.3; 1 of 3 frames
    assert near["top3"] == "REAL Real:0.5167; S1 Deepfakes:0.2767; novel-2:0.2067" and near["note"] == "a; b"
    unsure = video_rows(video_result([0.5, 0.4, 0.4]), names, {0}, threshold, min_confidence=0.6)[0]
    assert unsure["predicted"] == "unknown"


def test_frame_rows_follow_the_video_row_in_frame_order():
    from inference.predictions import video_rows

    result = video_result([0.5, 0.4, 0.4], skipped=[(2, 0.08, "no_face", "no face found"),
                                                     (12, 0.48, "unreadable", "frame 12 does not decode")])
    video, *frames = video_rows(result, ["A", "B", "C"], set(), {"threshold": 0.45}, per_frame=True)
    assert (video["frames_used"], video["frames_no_face"], video["frames_unreadable"]) == ("3", "1", "1")
    assert [(f["kind"], f["frame"], f["time"]) for f in frames] == [
        ("frame", "0", "0.000"), ("frame", "2", "0.080"), ("frame", "5", "0.200"), ("frame", "10", "0.400"),
        ("frame", "12", "0.480")]
    assert [f["predicted"] for f in frames] == ["A", "", "unknown", "unknown", ""]  # similarity 0.5, 0.4, 0.4
    assert [f["nearest"] for f in frames] == ["A", "", "B", "B", ""]
    assert [f["error"] for f in frames] == ["", "no face found", "", "", "frame 12 does not decode"]
