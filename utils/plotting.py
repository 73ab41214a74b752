"""Plots a run leaves in its directory (pure: arrays and records in, PNG out).

- curves.png: loss terms, test accuracies, novel threshold and confidences,
  NMI / ARI with the learning rate;
- k_estimate.png (when an estimate of K was logged): total number of classes
  (known + estimated novel, as the paper reports it) per epoch, from the
  starting number of prototypes;
- confidence.png: max-softmax confidence of known vs novel test images (the
  paper's confidence skew);
- tsne.png: t-SNE of test features, one colour per true class (60 distinct, the
  first nine of nine hues), marker by known/novel;
- estimate_k.py's k_curve.png: the post-hoc estimator's score per K;
- test.py's confusion.png: the confusion matrix, known classes on their own
  prototypes, novel ones Hungarian-matched, counts in the cells.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

CELL_INCHES = 0.3        # confusion.png: side of one cell, room for a 7 pt tick label
MAX_ANNOTATED = 80 * 80  # confusion.png: cells up to which each shows its count
LOSS_TERMS = ("loss", "sup", "reg", "ccr", "acr")
ACCURACIES = ("all_acc", "known_acc", "novel_acc")
# Estimators of the number of novel classes that may appear in metrics.jsonl, with their legend.
K_ESTIMATES = (("k_novel_estimate", "DPP (valid prototypes)"), ("k_posthoc", "post-hoc estimate"))


def _series(history: list[dict], key: str):
    points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _finish(ax, title: str, xlabel: str = "epoch", integer_x: bool = True) -> None:
    ax.set(title=title, xlabel=xlabel)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=8)


def _wrap(text: str, inches: float, points: float) -> str:
    """``text`` broken into lines that fit ``inches`` at a font of ``points`` (a character is
    about 0.6 em wide)."""
    return textwrap.fill(text, max(20, int(inches * 72 / (0.6 * points))))


def _save(fig, path: Path) -> None:
    """Write the figure; the saved canvas takes in every title and label, however small the plot."""
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    panels = [(axes[0], LOSS_TERMS, 1, "training loss terms (epoch mean)"),
              (axes[1], ACCURACIES, 100, "test accuracy (%)"),
              (axes[2], ("gamma_novel", "conf_known", "conf_novel"), 1, "novel threshold and test confidence"),
              (axes[3], ("nmi", "ari"), 100, "test NMI / ARI (%) and learning rate")]
    for ax, keys, scale, title in panels:
        for key in keys:
            x, y = _series(history, key)
            if x:
                ax.plot(x, [scale * v for v in y], marker=".", label=key)
        _finish(ax, title)
    x, lr = _series(history, "lr")
    if x:
        twin = axes[3].twinx()
        twin.step(x, lr, where="post", color="grey", linestyle=":", label="lr")
        twin.set(yscale="log", ylabel="lr")
        twin.legend(fontsize=8, loc="center right")
    _save(fig, path)


def has_k_estimate(history: list[dict]) -> bool:
    return any(r.get(key) is not None for r in history for key, _ in K_ESTIMATES)


def plot_k_estimate(history: list[dict], path: Path, num_known: int, start_total: int | None = None) -> dict:
    """Total K = num_known + each estimate present, after each epoch (x = epochs done);
    ``start_total`` (prototypes before any pruning) is drawn at x = 0 for DPP.
    Returns the drawn series, key -> (x, y)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = {}
    for key, label in K_ESTIMATES:
        epochs, values = _series(history, key)
        if not epochs:
            continue
        x, y = [e + 1 for e in epochs], [num_known + v for v in values]
        if key == "k_novel_estimate" and start_total is not None:
            x, y = [0] + x, [start_total] + y
        ax.step(x, y, where="post", marker="o", label=f"{label}: {y[-1]}")
        drawn[key] = (x, y)
    _, true = _series(history, "k_novel_true")
    if true:
        ax.axhline(num_known + true[-1], color="k", linestyle="--", label=f"true K = {num_known + true[-1]}")
    ax.set_ylabel(f"classes in total (known {num_known} + novel)")
    _finish(ax, "estimated number of classes", "epochs done")
    _save(fig, path)
    return drawn


def plot_confidence(label: np.ndarray, confidence: np.ndarray, num_known: int, path: Path) -> float | None:
    """Histograms of max-softmax confidence on known vs novel test images; returns
    the gap of their means (known - novel), None when a subset is empty."""
    known = label < num_known
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    means = {}
    for name, rows, colour in (("known", known, "tab:blue"), ("novel", ~known, "tab:orange")):
        if rows.any():
            means[name] = float(confidence[rows].mean())
            ax.hist(confidence[rows], bins=bins, alpha=0.6, color=colour, density=True,
                    label=f"{name} ({rows.sum()} images, mean {100 * means[name]:.1f}%)")
            ax.axvline(means[name], color=colour, linestyle="--")
    gap = means["known"] - means["novel"] if len(means) == 2 else None
    text = "gap n/a" if gap is None else f"gap {100 * gap:.1f} points"
    ax.set_ylabel("density")
    _finish(ax, f"test confidence, known vs novel: {text}", "max-softmax confidence", integer_x=False)
    _save(fig, path)
    return gap


def class_colours(count: int) -> list[tuple]:
    """``count`` colours, distinct up to 60, then repeating. The first nine are nine hues (tab10
    without its brown, so no two are shades of one hue), then brown and the light shade of each
    tab10 hue, then tab20b's and tab20c's five hues one shade at a time."""
    tab20 = [plt.get_cmap("tab20")(i) for i in range(20)]
    brown = 10
    hues = [tab20[i] for i in range(0, 20, 2) if i != brown] + [tab20[brown]]
    shades = [plt.get_cmap(name)(hue + shade) for name in ("tab20b", "tab20c") for shade in range(4)
              for hue in range(0, 20, 4)]
    palette = hues + tab20[1::2] + shades
    return [palette[i % len(palette)] for i in range(count)]


def plot_tsne(features: np.ndarray, label: np.ndarray, num_known: int, names: list[str], path: Path,
              seed: int = 0) -> dict:
    """t-SNE (scikit-learn) of feature rows; colour = true class (``class_colours``), circle = known,
    cross = novel. Returns the colour of each class drawn."""
    from sklearn.manifold import TSNE

    points = TSNE(n_components=2, perplexity=min(30.0, (len(features) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(features.astype(np.float32))
    fig, ax = plt.subplots(figsize=(10, 7))
    classes = np.unique(label)
    colours = dict(zip(classes.tolist(), class_colours(len(classes))))
    for c, colour in colours.items():
        rows = label == c
        ax.scatter(points[rows, 0], points[rows, 1], s=10, color=colour,
                   marker="o" if c < num_known else "x", label=names[c] if c < len(names) else str(c))
    ax.set(xticks=[], yticks=[], title=f"t-SNE of {len(features)} test features (o known, x novel)")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1), markerscale=1.5)
    _save(fig, path)
    return colours


def plot_k_curve(estimate: dict, path: Path, true_novel: int | None = None) -> None:
    """Score, probe F1 and silhouette per novel K (discovery/k_estimation.py), the
    floor a score must reach to tie with the best, the best and the chosen K
    (the last tied K walking up from the best) and, when known, the true one."""
    novel = [k - estimate["num_known"] for k in estimate["ks"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("scores", "-o"), ("probe_f1", "--."), ("silhouette", ":.")):
        ax.plot(novel, estimate[key], style, label=key.replace("scores", "score"), markersize=4)
    if estimate.get("tie_floor"):
        ax.plot(novel, estimate["tie_floor"], color="tab:gray", linewidth=1,
                label="tie floor (best - one paired standard error)")
    if estimate.get("k_best_score") is not None and estimate["k_best_score"] != estimate.get("k_novel"):
        ax.axvline(estimate["k_best_score"], color="tab:orange", linestyle=":",
                   label=f"best mean score at {estimate['k_best_score']}")
    if estimate.get("k_novel") is not None:
        ax.axvline(estimate["k_novel"], color="tab:red", label=f"chosen novel K = {estimate['k_novel']}")
    if true_novel is not None:
        ax.axvline(true_novel, color="k", linestyle="--", label=f"true novel K = {true_novel}")
    ax.set(xlabel="novel K", ylabel="score", title="post-hoc estimate of the number of novel classes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_run(history: list[dict], run_path: Path, num_known: int, start_total: int | None = None,
             outputs: dict | None = None, seed: int = 0) -> list[str]:
    """Every plot the data allows; returns the file names written. ``outputs``:
    test arrays ``label``, ``confidence``, ``features``, ``feature_label`` and
    ``names`` (see utils/report.py)."""
    written = ["curves.png"]
    plot_curves(history, run_path / "curves.png")
    if has_k_estimate(history):
        plot_k_estimate(history, run_path / "k_estimate.png", num_known, start_total)
        written.append("k_estimate.png")
    if outputs is not None and len(outputs["label"]):
        plot_confidence(outputs["label"], outputs["confidence"], num_known, run_path / "confidence.png")
        written.append("confidence.png")
    if outputs is not None and len(outputs["features"]) >= 5:
        plot_tsne(outputs["features"], outputs["feature_label"], num_known, list(outputs["names"]),
                  run_path / "tsne.png", seed)
        written.append("tsne.png")
    return written



def plot_confusion(matrix, row_names: list[str], column_names: list[str], num_known: int, path: Path) -> int:
    """Row-normalised confusion matrix (rows: true classes, columns: prototypes,
    aligned by ``utils.metrics.aligned_confusion``) with lines after the known
    block, each non-zero cell showing its count when the matrix has at most
    ``MAX_ANNOTATED`` cells; the figure grows with the class count so that
    every tick label stays readable. Returns the number of cells annotated."""
    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rows, columns = shares.shape
    fig, ax = plt.subplots(figsize=(3.5 + CELL_INCHES * columns, 3 + CELL_INCHES * rows))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.axhline(num_known - 0.5, color="crimson", linewidth=1)
    ax.axvline(num_known - 0.5, color="crimson", linewidth=1)
    ax.set_xticks(range(columns), column_names, rotation=90, fontsize=7)
    ax.set_yticks(range(rows), row_names, fontsize=7)
    annotated = 0
    if rows * columns <= MAX_ANNOTATED:
        for r, c in zip(*np.nonzero(counts)):
            ax.text(c, r, str(counts[r, c]), ha="center", va="center", fontsize=5.5,
                    color="white" if shares[r, c] > 0.5 else "black")
            annotated += 1
    width = fig.get_figwidth() * 0.8  # inches the axes span
    ax.set(xlabel=_wrap("predicted prototype (known: its own class; novel: Hungarian-matched)", width, 10),
           ylabel="true class",
           title=_wrap(f"confusion (colour: share of each true class; numbers: images); known block: first "
                       f"{num_known}", width, 12))
    fig.colorbar(image, ax=ax, fraction=0.03)
    _save(fig, path)
    return annotated
