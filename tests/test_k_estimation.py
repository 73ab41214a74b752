"""Post-hoc novel-K estimator (discovery/k_estimation.py) and estimate_k.py."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import silhouette_samples

from tests.conftest import TINY, run_cli
from discovery.k_estimation import (KEstimate, choose_k, cosine_silhouette, estimate_novel_k, hold_out_known,
                                    probe_f1, probe_sets, semi_supervised_kmeans, tie_floor)


def blobs(num_known: int, num_novel: int, seed: int, per_class: int = 100, dim: int = 32, noise: float = 0.1,
          labelled: float = 0.5):
    """Gaussian blobs around random unit centres; half of each known class labelled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_known + num_novel, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(num_known + num_novel), per_class)
    x = centres[y] + noise * rng.normal(size=(y.size, dim))
    labels = np.where((y < num_known) & (rng.random(y.size) < labelled), y, -1)
    return x.astype(np.float32), labels, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_novel_k_on_separated_blobs(seed):
    x, labels, _ = blobs(5, 7, seed)
    result = estimate_novel_k(x, labels, num_known=5, seed=seed)
    assert not result.degenerate, result.message
    assert result.k_novel == 7 and result.k_total == 12
    assert result.ks == list(range(5, 16))  # default k_max = 3 x K_known
    assert len(result.scores) == len(result.probe_f1) == len(result.silhouette) == len(result.ks)


def test_near_best_is_the_novel_k_range_within_the_tolerance():
    """Scores by hand: best 0.80 at total K 7 (2 novel); 0.795 at K 9 is within 0.01, 0.78 is not."""
    estimate = KEstimate(num_known=5, ks=[5, 6, 7, 8, 9, 10], scores=[0.5, 0.78, 0.80, 0.79, 0.795, 0.7])
    assert estimate.near_best() == (2, 4)
    assert estimate.near_best(0.03) == (1, 4)
    assert KEstimate(num_known=5).near_best() is None


def test_choose_k_walks_up_from_the_best_while_within_one_paired_standard_error_by_hand():
    """Best mean 0.80 at K 6. K 7: gaps to K 6 per draw 0.02, -0.02, 0.04, 0.00, mean 0.01, std
    sqrt(20e-4 / 3) = 0.0258, SE 0.0129 >= 0.01: tied. K 8 trails K 6 by 0.005 on every draw: its SE is 0,
    so the same small gap is real (paired draws) and the walk stops there; K 9 ties again by noise but lies
    beyond the dip."""
    ks = [5, 6, 7, 8, 9]
    scores = np.array([[0.50, 0.50, 0.50, 0.50],
                       [0.80, 0.70, 0.90, 0.80],
                       [0.78, 0.72, 0.86, 0.80],
                       [0.795, 0.695, 0.895, 0.795],
                       [0.81, 0.65, 0.90, 0.80]])
    floor = tie_floor(scores)
    assert floor[2] == pytest.approx(0.80 - np.sqrt(20e-4 / 3) / 2)
    assert list(scores.mean(1) >= floor) == [False, True, True, False, True]
    assert choose_k(ks, scores) == 7
    assert choose_k(ks, scores, within_se=0) == 6          # the argmax
    assert choose_k(ks, scores, within_se=0.5) == 6        # 0.01 > 0.5 x 0.0129
    assert choose_k(ks, scores[:, 2:3]) == 6               # one draw: no standard error, the argmax
    assert choose_k([5, 6], [[0.8, 0.7], [0.8, 0.7]], within_se=0) == 6  # an exact tie: the larger K


def test_probe_f1_by_hand():
    """F1 = 2 |class & cluster| / (|class| + |cluster|), clusters counted with every row in them,
    probe classes matched one to one by the largest total F1."""
    labels = np.array([0, 0, 0, 1, 1, -1, -1, -1, 2, 2])    # probe classes 0 and 1; 2 is anchored
    clusters = np.array([4, 4, 4, 5, 5, 5, 4, 6, 0, 0])
    # class 0 (3 rows) -> cluster 4 (4 rows: its 3 and one novel row): 2*3/(3+4) = 6/7
    # class 1 (2 rows) -> cluster 5 (3 rows): 2*2/(2+3) = 4/5
    assert probe_f1(labels, clusters, np.array([0, 1])) == pytest.approx((6 / 7 + 4 / 5) / 2)
    # a K too small: the last novel row joins class 1's cluster too (no cluster 6 left), precision falls
    merged = np.array([4, 4, 4, 5, 5, 5, 4, 5, 0, 0])
    assert probe_f1(labels, merged, np.array([0, 1])) == pytest.approx((6 / 7 + 2 * 2 / (2 + 4)) / 2)
    # a K too large: class 0 split over two clusters, recall falls
    split = np.array([4, 4, 7, 5, 5, 5, 4, 6, 0, 0])
    assert probe_f1(labels, split, np.array([0, 1])) == pytest.approx((2 * 2 / (3 + 3) + 4 / 5) / 2)


def test_probe_sets_are_folds_so_every_class_is_probed_equally_often():
    sets = probe_sets(np.random.default_rng(0), num_known=13, num_probe=4, count=9)
    assert len(sets) == 9 and all(len(s) == 4 and list(s) == sorted(s) for s in sets)
    for fold in range(0, 9, 3):  # one permutation gives 3 disjoint folds of 4 (one class waits)
        assert len(np.unique(np.concatenate(sets[fold:fold + 3]))) == 12
    assert np.bincount(np.concatenate(sets)).max() <= 3  # once per permutation (free draws: up to 9 times)
    assert all(len(s) == 5 for s in probe_sets(np.random.default_rng(0), 5, 5, 3))  # the whole set each time


def test_restarts_run_together_and_the_lowest_inertia_wins():
    """n_init restarts in one batch: the result is the best restart, so more restarts never raise the inertia,
    and the reported inertia is the mean squared distance of every row to its centre."""
    x, labels, _ = blobs(3, 4, seed=3, noise=0.3)
    x = F.normalize(torch.from_numpy(x), dim=1)
    labels = torch.from_numpy(labels)
    inertias = [semi_supervised_kmeans(x, labels, 3, 7, n_init=n, seed=0)[2] for n in (1, 4, 16)]
    assert inertias[0] >= inertias[1] >= inertias[2]
    assignment, centres, inertia = semi_supervised_kmeans(x, labels, 3, 7, n_init=4, seed=0)
    assert inertia == pytest.approx(float(((x - centres[assignment]) ** 2).sum(1).mean()), rel=1e-5)


def test_wide_k_range_is_swept_coarse_then_fine_on_a_row_sample():
    """With more K values than max_points, every step-th K first, then every K around the coarse
    best: the blobs' 7 novel classes are still found, with far fewer clusterings; max_rows samples."""
    x, labels, _ = blobs(5, 7, seed=0)
    result = estimate_novel_k(x, labels, num_known=5, k_max=85, max_points=8, max_rows=1000, probe_draws=4)
    assert result.k_novel == 7 and result.rows_used == 1000
    assert result.ks == sorted(set(result.ks)) and set(range(5, 86, 10)) <= set(result.ks)  # the coarse grid
    assert set(range(6, 15)) <= set(result.ks) and len(result.ks) < 30  # fine around the best (K 12 is in 5..15)


def test_default_range_grows_while_the_best_k_is_the_largest_tried():
    """4 known + 10 novel: 14 in all lies beyond 3 x K_known = 12, so the range grows by 4 until the
    curve turns; a given k_max is kept as it is, and k_limit caps the growth."""
    x, labels, _ = blobs(4, 10, seed=0)
    grown = estimate_novel_k(x, labels, num_known=4, probe_draws=4)
    assert grown.k_novel == 10 and max(grown.ks) == 16
    assert max(estimate_novel_k(x, labels, num_known=4, k_max=12, probe_draws=4).ks) == 12
    assert max(estimate_novel_k(x, labels, num_known=4, k_limit=13, probe_draws=4).ks) == 13


def test_labelled_rows_stay_in_their_class():
    x, labels, y = blobs(3, 2, seed=0, noise=0.6)  # overlapping: free rows of all classes get mixed up
    x = F.normalize(torch.from_numpy(x), dim=1)
    labels = torch.from_numpy(labels)
    assignment, centres, _ = semi_supervised_kmeans(x, labels, num_anchored=3, k=5, n_init=2, seed=0)
    labelled = labels >= 0
    assert torch.equal(assignment[labelled], labels[labelled])
    # every centre is the mean of its members (labelled and free)
    for c in range(5):
        members = x[assignment == c]
        if len(members):
            assert torch.allclose(centres[c], members.mean(0), atol=1e-5)
    # free rows sit at their nearest centre
    free = ~labelled
    nearest = torch.cdist(x[free], centres).argmin(1)
    assert torch.equal(assignment[free], nearest)


def test_cosine_silhouette_matches_sklearn():
    rng = np.random.default_rng(0)
    x = F.normalize(torch.from_numpy(rng.normal(size=(60, 5))), dim=1)
    assignment = torch.from_numpy(rng.integers(0, 3, 60))
    assignment[0] = 3  # a singleton cluster scores 0
    expected = silhouette_samples(x.numpy(), assignment.numpy(), metric="cosine")
    rows = torch.arange(60) % 2 == 0
    assert cosine_silhouette(x, assignment) == pytest.approx(expected.mean(), abs=1e-9)
    assert cosine_silhouette(x, assignment, rows) == pytest.approx(expected[rows.numpy()].mean(), abs=1e-9)


@pytest.mark.parametrize("case", ["one_blob", "identical", "no_unlabelled"])
def test_degenerate_input_is_reported(case):
    rng = np.random.default_rng(0)
    x = 0.05 * rng.normal(size=(400, 16)).astype(np.float32) + 1.0  # one cluster, known labels at random
    labels = np.where(rng.random(400) < 0.5, rng.integers(0, 4, 400), -1)
    if case == "identical":
        x = np.ones_like(x)
    elif case == "no_unlabelled":
        labels = rng.integers(0, 4, 400)
    result = estimate_novel_k(x, labels, num_known=4)
    assert result.degenerate and result.k_novel is None
    expected = {"one_blob": "one cluster", "identical": "identical", "no_unlabelled": "no unlabelled"}[case]
    assert expected in result.message


def test_k_max_is_capped_by_the_unlabelled_rows():
    x, labels, _ = blobs(4, 2, seed=0)
    labels[labels < 0] = 0
    labels[:3] = -1  # fewer unlabelled rows than novel K to try
    result = estimate_novel_k(x, labels, num_known=4)
    assert result.ks == [4, 5, 6, 7] and not result.degenerate
    assert "k_max lowered from 12 to 7" in result.message


@pytest.fixture(scope="module")
def tiny_checkpoint(mini_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("k_run") / "run"
    result = run_cli("train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}", "epochs=1",
                     *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir / "checkpoints" / "last.pt"


def test_cli_on_a_one_epoch_checkpoint_says_why_there_is_no_estimate(tiny_checkpoint, tmp_path):
    # one epoch on 12 images per class leaves features without class structure
    result = run_cli("estimate_k.py", "--ckpt", str(tiny_checkpoint), "--out", str(tmp_path), "--k_max", "30")
    record = json.loads((tmp_path / "k_curve.json").read_text())
    assert result.returncode == 3, result.stderr[-3000:]
    assert record["degenerate"] and record["k_novel"] is None and record["k_novel_true"] == 22
    assert "form no clusters" in record["message"] and record["message"] in result.stderr
    assert record["num_images"] == 379 and record["num_labelled"] == 135  # the TINY split of the mini tree
    assert "features: 100%" in result.stderr, "feature extraction shows its progress"


def test_cli_prints_the_estimate_and_writes_the_curve(monkeypatch, tmp_path, capsys):
    import estimate_k

    x, labels, _ = blobs(5, 7, seed=0)
    split = SimpleNamespace(num_known=5, num_novel_in_test=7)
    monkeypatch.setattr(estimate_k, "training_features", lambda args: (x, labels, split, torch.device("cpu")))
    assert estimate_k.main(["--ckpt", "run/checkpoints/last.pt", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "K sweep: " in err and "11K" in err, "the sweep shows its progress (11 K values scored)"
    assert "estimated novel K: 7 (true 7, error +0); total K 12" in out
    assert "novel K scoring within 0.01 of the best: 7-7\n" in out  # separated blobs: a sharp peak
    record = json.loads((tmp_path / "k_curve.json").read_text())
    assert record["k_novel"] == 7 and record["k_novel_error"] == 0 and record["ks"] == list(range(5, 16))
    assert record["k_best_score"] == 7 and len(record["tie_floor"]) == 11
    assert np.array(record["draw_scores"]).shape == (11, 12)  # every draw's score, to recompute any rule
    assert np.allclose(np.mean(record["draw_scores"], axis=1), record["scores"])
    assert (tmp_path / "k_curve.png").stat().st_size > 0


def test_hold_out_known_hides_the_held_classes_and_renumbers_the_rest_by_hand():
    labels = np.array([0, 1, 2, 3, -1, 2, 0])
    held_labels, visible = hold_out_known(labels, 4, np.array([2, 0]))
    assert visible == 2 and held_labels.tolist() == [-1, 0, -1, 1, -1, -1, -1]
    with pytest.raises(ValueError, match="hold out 1 to 3 of the 4 known classes"):
        hold_out_known(labels, 4, np.arange(4))


def test_cli_hold_out_reports_the_miss_on_known_classes_counted_as_novel(monkeypatch, tmp_path, capsys):
    import estimate_k

    x, labels, _ = blobs(6, 7, seed=0)
    split = SimpleNamespace(num_known=6, num_novel_in_test=7)
    monkeypatch.setattr(estimate_k, "training_features", lambda args: (x, labels, split, torch.device("cpu")))
    assert estimate_k.main(["--ckpt", "run/checkpoints/last.pt", "--out", str(tmp_path), "--hold_out", "2",
                            "--hold_out_draws", "2"]) == 0
    out = capsys.readouterr().out
    draws = json.loads((tmp_path / "k_curve.json").read_text())["hold_out"]
    assert [len(draw["held_out"]) for draw in draws] == [2, 2] and draws[0]["held_out"] != draws[1]["held_out"]
    assert all(draw["k_novel_true"] == 9 and draw["k_novel"] == 9 and draw["error"] == 0 for draw in draws)
    assert "novel K 9 (error +0) of 9" in out and "mean error +0.0 % over 2 draws" in out
    assert estimate_k.main(["--ckpt", "run/checkpoints/last.pt", "--out", str(tmp_path), "--hold_out", "6"]) == 2
    assert "at most 5 of the 6 known classes" in capsys.readouterr().err


def test_cli_out_must_be_a_folder_and_is_checked_first(tmp_path, monkeypatch, capsys):
    import estimate_k

    monkeypatch.setattr(estimate_k, "training_features", lambda args: pytest.fail("work before the --out check"))
    (tmp_path / "taken").write_text("")
    for out, message in ((tmp_path / "taken", "is a file, but it takes a folder"),
                         (tmp_path / "curve.json", "names a .json file, but it takes a folder")):
        assert estimate_k.main(["--ckpt", "run/checkpoints/last.pt", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err and "e.g. --out" in err


def test_cli_bad_checkpoint_is_one_line(tmp_path):
    result = run_cli("estimate_k.py", "--ckpt", str(tmp_path / "missing.pt"))
    assert result.returncode == 2 and "does not exist" in result.stderr
