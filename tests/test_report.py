"""Run plots on hand-made inputs: total K from its start value for any estimator
present, the confidence gap, the test-output file and its subsample, a colour
per class in the t-SNE (nine hues first) and counts in the confusion matrix,
whose title and labels fit the saved image with few classes too."""
import numpy as np
import pytest

from utils import plotting
from utils.plotting import (CELL_INCHES, class_colours, plot_confidence, plot_confusion, plot_k_estimate, plot_run,
                            plot_tsne)
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


def test_tsne_gives_each_of_41_classes_its_own_colour(tmp_path):
    label = np.repeat(np.arange(41), 3)
    features = np.random.default_rng(0).normal(size=(len(label), 8)) + label[:, None]
    colours = plot_tsne(features, label, 19, [f"c{i}" for i in range(41)], tmp_path / "t.png")
    assert sorted(colours) == list(range(41)) and len(set(colours.values())) == 41
    assert (tmp_path / "t.png").stat().st_size > 0


def test_confusion_plot_writes_counts_and_grows_with_the_classes(tmp_path):
    from matplotlib.image import imread

    rng = np.random.default_rng(1)
    sizes = {}
    for classes in (10, 41):
        matrix = rng.integers(0, 4, size=(classes, classes)) * (rng.random((classes, classes)) < 0.2)
        names = [f"class {i} with a long name" for i in range(classes)]
        annotated = plot_confusion(matrix, names, names, 5, tmp_path / f"c{classes}.png")
        assert annotated == np.count_nonzero(matrix)
        sizes[classes] = imread(tmp_path / f"c{classes}.png").shape[:2]
    assert all(side > 41 * CELL_INCHES * 100 for side in sizes[41])  # pixels at 110 dpi: a cell per 7 pt label
    assert all(big > small for big, small in zip(sizes[41], sizes[10]))


def test_the_first_nine_class_colours_are_nine_hues():
    """With few classes no two colours are shades of one hue (tab20 paired dark and light blue)."""
    from skimage.color import lab2lch, rgb2lab

    lch = [lab2lch(rgb2lab(np.array(c[:3], dtype=float)[None, None]))[0, 0] for c in class_colours(9)]
    hues = [np.degrees(h) for _, chroma, h in lch if chroma > 15]
    assert len(hues) >= 8  # at most one grey
    gaps = [abs((a - b + 180) % 360 - 180) for i, a in enumerate(hues) for b in hues[i + 1:]]
    assert min(gaps) >= 20
    assert len(set(class_colours(60))) == 60


@pytest.mark.parametrize("classes", [2, 3, 41])
def test_confusion_title_and_labels_fit_the_saved_image(tmp_path, monkeypatch, classes):
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox
    from PIL import Image

    figures = []
    monkeypatch.setattr(plotting.plt, "close", figures.append)  # keep the figure to measure its texts
    names = ["REAL", "BLUR", "SWAP"][:classes] if classes <= 3 else [f"class {i}" for i in range(classes)]
    plot_confusion(np.eye(classes, dtype=int) * 3 + 1, names, names, 1, tmp_path / "confusion.png")
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    texts = [a for a in fig.findobj(Text) if a.get_visible() and a.get_text()]
    assert {fig.axes[0].get_title(), fig.axes[0].get_xlabel()} <= {a.get_text() for a in texts}
    extent = Bbox.union([a.get_window_extent(renderer) for a in texts])  # pixels at fig.dpi
    width, height = Image.open(tmp_path / "confusion.png").size  # pixels at 110 dpi
    assert extent.width * 110 / fig.dpi <= width and extent.height * 110 / fig.dpi <= height
