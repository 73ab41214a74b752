"""How well does the abstain rule say ``unknown`` to a method never trained on?

    python scripts/bench/abstain_holdout.py --run RUN_DIR --held_out DATA/38_Edit_e4e

RUN_DIR is a run trained with a class table that leaves the held-out method
out entirely (docs/attribution.md gives the commands). Positives: the held-out
method's images; negatives: the run's test images (classes it trained on,
known and novel). Prints the threshold, the precision and recall of
``unknown``, the unknown share per subset, AUROC of the prototype similarity,
the softmax confidence, the energy (logsumexp of the logits) and the mean cosine
to the k nearest training features (k = 1, 10, 50: a score blind to the
prototypes) as scores, what flat one-colour images get, and each novel
cluster's purity.
A model without a stored threshold is calibrated here on its training images,
as training does at its end.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.special import logsumexp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from discovery.abstain import knn_similarity  # noqa: E402
from inference.attributor import Attributor, collect_inputs  # noqa: E402
from inference.loading import load_model_state  # noqa: E402
from inference.names import cluster_label  # noqa: E402
from inference.predictions import mark_unknown  # noqa: E402


def split_paths(run: Path, roles: set[str]) -> tuple[list[str], list[int]]:
    """Paths and original class indices of the run's images in ``roles`` (split.json)."""
    split = json.loads((run / "split.json").read_text())
    root = Path(json.loads((run / "config.json").read_text())["dataset_root"])
    chosen = [r for r in split["images"] if r["role"] in roles]
    return [str(root / r["path"]) for r in chosen], [r["class"] for r in chosen]


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores higher than a negative), ties counted half."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(positive)), np.zeros(len(negative))], np.r_[positive, negative]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="run directory trained without the held-out method")
    parser.add_argument("--held_out", required=True, help="folder of the held-out method's images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_workers", type=int, default=0)
    args = parser.parse_args(argv)

    attributor = Attributor.load(str(args.run), args.device)
    options = {"num_workers": args.num_workers, "progress": False}
    training_paths = split_paths(args.run, {"train-labelled", "train-unlabelled"})[0]
    if attributor.abstain is None:
        attributor.calibrate(training_paths, **options)
        print("calibrated on the training images (the checkpoint carries no threshold)")
    abstain = attributor.abstain
    print(f"threshold {abstain['threshold']:.4f}: prototype similarity accepting {100 * abstain['accept']:.0f}% of "
          f"{abstain['images']} training images")

    state = load_model_state(str(args.run))
    known = {c["index"] for c in state["classes"] if c["known"]}
    test_paths, test_classes = split_paths(args.run, {"test"})
    held_out = collect_inputs([args.held_out]).paths
    scored = {}
    for key, paths in (("held_out", held_out), ("test", test_paths)):
        out = attributor.outputs(paths, **options)
        mark_unknown(out, attributor.prototypes, abstain)
        logits = out["features"] @ attributor.prototypes.T  # CAL's logits (z W^T), for the energy score
        scored[key] = {"unknown": out["unknown"], "similarity": out["similarity"], "confidence": out["confidence"],
                       "energy": logsumexp(logits, axis=1), "nearest": out["pred"], "index": out["index"],
                       "features": out["features"]}
    positive, negative = scored["held_out"], scored["test"]
    is_known = np.array([c in known for c in test_classes])[negative["index"]]  # readable images only
    true_positive, false_positive = int(positive["unknown"].sum()), int(negative["unknown"].sum())
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = positive["unknown"].mean()
    print(f"held-out images called unknown: {true_positive} of {len(positive['unknown'])}")
    print(f"test images of trained classes called unknown: {false_positive} of {len(negative['unknown'])} "
          f"(known classes {int(negative['unknown'][is_known].sum())} of {int(is_known.sum())}, novel classes "
          f"{int(negative['unknown'][~is_known].sum())} of {int((~is_known).sum())})")
    print(f"precision of unknown {100 * precision:.1f}%, recall {100 * recall:.1f}%")
    scores = ["similarity", "confidence", "energy"]
    training = attributor.outputs(training_paths, **options)["features"]
    for k in (1, 10, 50):
        scores.append(f"{k}-NN similarity to the training features")
        for entry in (positive, negative):
            entry[scores[-1]] = knn_similarity(entry["features"], training, k)
    for name in scores:
        print(f"AUROC of low {name} for held-out vs trained: {auroc(-positive[name], -negative[name]):.3f}")
    nearest = Counter(attributor.names[j] for j in positive["nearest"].tolist())
    print("held-out images' nearest classes: " + ", ".join(f"{name} {count}" for name, count in nearest.most_common(5)))
    with tempfile.TemporaryDirectory() as folder:
        flats = []
        for colour in ((128, 128, 128), (0, 0, 0), (255, 255, 255), (200, 40, 40)):
            flats.append(str(Path(folder) / f"flat_{'_'.join(map(str, colour))}.png"))
            Image.new("RGB", (2000, 2000), colour).save(flats[-1])
        for row in attributor.predict_paths(flats, **options):
            print(f"{Path(row['path']).stem} (2000 px, one colour): {row['predicted']} (nearest {row['nearest']}, "
                  f"confidence {row['confidence']}, similarity {row['similarity']})")
    print("novel clusters of the final evaluation (test split):")
    for entry in sorted(state.get("cluster_assignment") or [], key=lambda a: a["prototype"]):
        if entry["prototype"] >= state["num_known"]:
            print(f"  novel-{entry['prototype']}: {cluster_label(entry, state['classes'])} "
                  f"({entry['images']} of {entry['predicted']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
