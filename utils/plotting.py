"""Plots a run leaves in its directory: curves.png (losses, accuracies,
novel threshold) and, with unknown K, k_estimate.png (estimated vs true
number of novel classes per epoch); estimate_k.py's k_curve.png (the
post-hoc estimator's score per K); test.py's confusion.png."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSS_TERMS = ("loss", "sup", "reg", "ccr", "acr")
ACCURACIES = ("all_acc", "known_acc", "novel_acc")


def _series(history: list[dict], key: str):
    points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(history: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in LOSS_TERMS:
        x, y = _series(history, key)
        if x:
            axes[0].plot(x, y, marker=".", label=key)
    axes[0].set(title="training loss terms (epoch mean)", xlabel="epoch")
    for key in ACCURACIES:
        x, y = _series(history, key)
        if x:
            axes[1].plot(x, [100 * v for v in y], marker=".", label=key)
    axes[1].set(title="test accuracy (%)", xlabel="epoch")
    for key in ("gamma_novel", "conf_known", "conf_novel"):
        x, y = _series(history, key)
        if x:
            axes[2].plot(x, y, marker=".", label=key)
    axes[2].set(title="novel threshold and test confidence", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_k_estimate(history: list[dict], path: Path) -> None:
    x, estimate = _series(history, "k_novel_estimate")
    _, true = _series(history, "k_novel_true")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(x, estimate, where="post", marker="o", label="estimated novel K (DPP)")
    if true:
        ax.axhline(true[-1], color="k", linestyle="--", label=f"true novel K = {true[-1]}")
    ax.set(xlabel="epoch", ylabel="novel prototypes kept", title="Dynamic Prototype Pruning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_k_curve(estimate: dict, path: Path, true_novel: int | None = None) -> None:
    """Score, probe accuracy and silhouette per novel K (utils/k_estimation.py),
    the chosen K and, when known, the true one."""
    novel = [k - estimate["num_known"] for k in estimate["ks"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("scores", "-o"), ("probe_acc", "--."), ("silhouette", ":.")):
        ax.plot(novel, estimate[key], style, label=key.replace("scores", "score"), markersize=4)
    if estimate.get("k_novel") is not None:
        ax.axvline(estimate["k_novel"], color="tab:red", label=f"chosen novel K = {estimate['k_novel']}")
    if true_novel is not None:
        ax.axvline(true_novel, color="k", linestyle="--", label=f"true novel K = {true_novel}")
    ax.set(xlabel="novel K", ylabel="score", title="post-hoc estimate of the number of novel classes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_run(history: list[dict], run_path: Path) -> None:
    plot_curves(history, run_path / "curves.png")
    if any("k_novel_estimate" in r for r in history):
        plot_k_estimate(history, run_path / "k_estimate.png")


def plot_confusion(matrix, row_names: list[str], column_names: list[str], num_known: int, path: Path) -> None:
    """Row-normalised confusion matrix (rows: true classes, columns: prototypes)
    with lines after the known block of rows and columns."""
    import numpy as np

    counts = np.asarray(matrix, dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rows, columns = shares.shape
    fig, ax = plt.subplots(figsize=(4 + 0.22 * columns, 3 + 0.22 * rows))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.axhline(num_known - 0.5, color="crimson", linewidth=1)
    ax.axvline(num_known - 0.5, color="crimson", linewidth=1)
    ax.set_xticks(range(columns), column_names, rotation=90, fontsize=6)
    ax.set_yticks(range(rows), row_names, fontsize=6)
    ax.set(xlabel="predicted prototype (Hungarian-aligned)", ylabel="true class",
           title=f"confusion (share of each true class); known block: first {num_known}")
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
