"""Draw the framework figure of README.md (assets/cal_framework.png) from this file alone.

    python scripts/plot_framework.py [--out assets/cal_framework.png]

Boxes are the stages of METHOD.md sections 3-5 as this code runs them:
the data pipeline, the network, the four loss terms and the epoch-end updates.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROW_NETWORK, ROW_LOSSES, ROW_EPOCH = 3.0, 1.55, 0.3
HEIGHT = 0.7
BOXES = [  # (x, y, width, text, colour)
    (0.0, ROW_NETWORK, 1.7, "face image\n(dlib crop, cached)", "#e8eef7"),
    (2.1, ROW_NETWORK, 1.7, "weak + strong\nviews", "#e8eef7"),
    (4.2, ROW_NETWORK, 2.0, "backbone (timm)\nfeature map", "#fdf0d5"),
    (6.6, ROW_NETWORK, 2.0, "× frequency\nattention (DCT)", "#fdf0d5"),
    (9.0, ROW_NETWORK, 1.6, "pool +\nBNNeck", "#fdf0d5"),
    (11.0, ROW_NETWORK, 2.2, "prototypes W[:V]\nknown | novel", "#fdf0d5"),
    (0.6, ROW_LOSSES, 2.6, "supervised CE\n(labelled rows)", "#e3f2e1"),
    (3.6, ROW_LOSSES, 2.6, "prior regulariser\n(uniform usage)", "#e3f2e1"),
    (6.6, ROW_LOSSES, 3.0, "CCR: weak → strong,\nconfident → unconfident", "#e3f2e1"),
    (10.0, ROW_LOSSES, 3.2, "ACR: pseudo-labels,\nγ known, γ_novel adaptive", "#e3f2e1"),
    (2.0, ROW_EPOCH, 4.6, "epoch end: recalibrate γ_novel", "#f3e5f5"),
    (7.2, ROW_EPOCH, 6.0, "unknown K: post-hoc estimate sets the\nnovel prototypes (or DPP prunes them)", "#f3e5f5"),
]
BUS = 2.55  # the logits feed every loss term: a line under the network row, one arrow per term
ARROWS = [((1.7, 3.35), (2.1, 3.35)), ((3.8, 3.35), (4.2, 3.35)), ((6.2, 3.35), (6.6, 3.35)),
          ((8.6, 3.35), (9.0, 3.35)), ((10.6, 3.35), (11.0, 3.35)),
          *[((x + width / 2, BUS), (x + width / 2, ROW_LOSSES + HEIGHT + 0.05)) for x, y, width, _, _ in BOXES
            if y == ROW_LOSSES]]


def draw(out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(13.5, 4.2))
    for x, y, width, text, colour in BOXES:
        ax.add_patch(FancyBboxPatch((x, y), width, HEIGHT, boxstyle="round,pad=0.05", fc=colour, ec="#555555"))
        ax.text(x + width / 2, y + HEIGHT / 2, text, ha="center", va="center", fontsize=10)
    ax.plot([1.9, 12.1, 12.1], [BUS, BUS, ROW_NETWORK - 0.05], color="#333333", lw=1.3)
    ax.text(7.0, BUS + 0.08, "logits of both views", ha="center", va="bottom", fontsize=9, color="#333333")
    for start, end in ARROWS:
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 1.3})
    for y, label in ((ROW_NETWORK, "network"), (ROW_LOSSES, "losses"), (ROW_EPOCH, "every epoch")):
        ax.text(-0.2, y + HEIGHT / 2, label, ha="right", va="center", fontsize=10, style="italic", color="#555555")
    ax.set_xlim(-1.2, 13.4)
    ax.set_ylim(0.1, 3.9)
    ax.axis("off")
    ax.set_title("CAL: confidence-aware asymmetric learning for open-world deepfake attribution", fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "cal_framework.png"),
                        metavar="FILE.png", help="the figure's .png file (default: assets/cal_framework.png)")
    print(f"wrote {draw(Path(parser.parse_args().out))}")
