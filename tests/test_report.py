"""Run plots on hand-made inputs: total K from its start value for any estimator
present, the confidence gap, the test-output file and its subsample."""
import numpy as np
import pytest

from utils.plotting import plot_confidence, plot_k_estimate, plot_run
from utils.report import MAX_TSNE_POINTS, load_test_outputs, save_test_outputs

HISTORY = [{"epoch": 0, "loss": 2.0, "lr": 1e-3, "all_acc": 0.2, "nmi": 0.3, "valid_prototypes": 30,
            "k_novel_estimate": 27, "k_novel_true": 4},
           {"epoch": 1, "loss": 1.5, "lr": 1e-4, "all_acc": 0.3, "nmi": 0.4, "valid_prototypes": 9,
            "k_novel_estimate": 6, "k_novel_true": 4, "k_posthoc": 5}]


def test_k_plot_draws_total_k_of_every_estimator(tmp_path):
    drawn = plot_k_estimate(HISTORY, tmp_path / "k.png", num_known=3, start_total=30)
    assert drawn["k_novel_estimate"] == ([0, 1, 2], [30, 30, 9])   # start, then known 3 + estimate
    assert drawn["k_posthoc"] == ([2], [8])                          # only where logged
    assert (tmp_path / "k.png").stat().st_size > 0


def test_confidence_gap(tmp_path):
    label = np.array([0, 1, 2, 3, 3])
    confidence = np.array([0.9, 0.7, 0.8, 0.3, 0.5])
    assert plot_confidence(label, confidence, 3, tmp_path / "c.png") == pytest.approx(0.8 - 0.4)
    assert plot_confidence(label[:3], confidence[:3], 3, tmp_path / "c.png") is None  # no novel images


def test_outputs_subsample_keeps_rows_and_labels_together(tmp_path):
    n = MAX_TSNE_POINTS + 500
    label = np.arange(n) % 7
    features = np.repeat(label[:, None], 4, axis=1).astype(np.float32)  # each row carries its label
    save_test_outputs(tmp_path, label, label, np.full(n, 0.5), features, [f"c{i}" for i in range(7)], seed=1)
    out = load_test_outputs(tmp_path)
    assert len(out["label"]) == n and out["features"].shape == (MAX_TSNE_POINTS, 4)
    assert np.array_equal(out["features"][:, 0], out["feature_label"]) and out["features"].dtype == np.float16
    written = plot_run(HISTORY, tmp_path, 3, 30, {**out, "features": out["features"][:40],
                                                  "feature_label": out["feature_label"][:40]})
    assert written == ["curves.png", "k_estimate.png", "confidence.png", "tsne.png"]
    assert plot_run([{"epoch": 0, "loss": 1.0}], tmp_path, 3) == ["curves.png"]
