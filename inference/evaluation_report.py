"""test.py --save_predictions: the per-image CSV of the test split plus, beside
it, per_class.csv, clusters.csv (every prototype's purity), confusion.csv /
confusion.png, and report.md gathering the metrics, both tables and links
to the plots."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inference.names import no_novel_cluster, prototype_names, purity, real_prototypes
from inference.predictions import TEST_COLUMNS, mark_unknown, prediction_rows, write_csv, write_table
from utils.tables import discovery_lines, metric_rows
from utils.metrics import aligned_confusion, per_class_accuracy
from utils.text import markdown_table

RUN_PLOTS = ("curves.png", "k_estimate.png", "confidence.png", "tsne.png")  # utils/plotting.py, in the run


def save_test_report(path: str | Path, out: dict, split, state: dict, metrics: dict, prototypes: np.ndarray,
                     run_dir: Path | None = None) -> list[Path]:
    """Write the files for the predictions ``out`` (utils.evaluation.predict, with
    features) over ``split``'s test images with ``metrics`` (``prototypes``: the model's valid
    prototype rows, for the abstain rule; ``run_dir``: the run whose plots report.md links);
    returns their paths."""
    from utils.plotting import plot_confusion

    path = Path(path)
    folder = path.parent
    classes, names = state["classes"], prototype_names(state)
    class_names = [c["name"] for c in classes]
    mark_unknown(out, prototypes, state.get("abstain"))
    true_names = [class_names[label] for label in split.test_labels.tolist()]
    write_csv(prediction_rows(split.test_paths, out, names, real_prototypes(state), true_names), path, TEST_COLUMNS)

    per_class = [["label", "class", "set", "images", "correct", "accuracy", "prototype"]]
    for row in per_class_accuracy(out["label"], out["pred"], state["num_known"], len(classes)):
        per_class.append([row["label"], class_names[row["label"]], "known" if row["known"] else "novel",
                          row["images"], row["correct"], _share(row["accuracy"]),
                          "" if row["prototype"] is None else names[row["prototype"]]])
    clusters = cluster_table(out, state, names, metrics["cluster_assignment"])
    matrix, order = aligned_confusion(out["label"], out["pred"], len(classes), state["num_known"], len(names))
    # a novel column is named by its prototype alone: the row on its diagonal is the novel class this
    # matching gives it, which may differ from the all-class matching behind the cluster names
    column_names = [names[p] if p < state["num_known"] else f"novel-{p}" for p in order]
    confusion = [["true", "set", *column_names]] + [[class_names[c], "known" if classes[c]["known"] else "novel",
                                                     *counts] for c, counts in enumerate(matrix.tolist())]
    files = {name: folder / name for name in ("per_class.csv", "clusters.csv", "confusion.csv", "confusion.png",
                                              "report.md")}
    write_table(files["per_class.csv"], per_class)
    write_table(files["clusters.csv"], clusters)
    write_table(files["confusion.csv"], confusion)
    plot_confusion(matrix, class_names, column_names, state["num_known"], files["confusion.png"])
    files["report.md"].write_text(report_markdown(metrics, per_class, clusters, abstain_counts(out, state),
                                                  plot_links(folder, run_dir), path.name))
    return [path, *files.values()]


def cluster_table(out: dict, state: dict, names: list[str], assignment: list[dict]) -> list[list]:
    """Per valid prototype: test images on it, the class it stands for (its own for a known
    prototype; for a novel one this evaluation's Hungarian matching ``assignment``, from
    ``utils.evaluation.prediction_metrics``) with the purity (share of its images of that
    class), and its largest class with that share."""
    classes, num_known = state["classes"], state["num_known"]
    label, pred = np.asarray(out["label"]), np.asarray(out["pred"])
    matched = {a["prototype"]: a for a in assignment}
    table = [["prototype", "name", "set", "images", "class", "class_images", "purity", "largest", "largest_share"]]
    for j, name in enumerate(names):
        on = label[pred == j]
        counts = np.bincount(on, minlength=len(classes))
        entry = ({"label": j, "images": int(counts[j]), "predicted": int(on.size)} if j < num_known
                 else matched.get(j))
        largest = int(counts.argmax()) if on.size else None
        table.append([j, name, "known" if j < num_known else "novel", int(on.size),
                      "" if entry is None else classes[entry["label"]]["name"],
                      "" if entry is None else entry["images"], _share(None if entry is None else purity(entry)),
                      "" if largest is None else classes[largest]["name"],
                      _share(counts[largest] / on.size if on.size else None)])
    return table


def abstain_counts(out: dict, state: dict) -> dict | None:
    """Test images called unknown by the model's abstain threshold, known and novel classes apart."""
    if state.get("abstain") is None:
        return None
    known = np.asarray(out["label"]) < state["num_known"]
    unknown = np.asarray(out["unknown"])
    return {"threshold": state["abstain"]["threshold"], "known": (int(unknown[known].sum()), int(known.sum())),
            "novel": (int(unknown[~known].sum()), int((~known).sum()))}


def plot_links(folder: Path, run_dir: Path | None) -> list[tuple[str, str]]:
    """(name, relative link) of confusion.png and of the run's plots that exist."""
    links = [("confusion", "confusion.png")]
    for name in RUN_PLOTS if run_dir is not None else ():
        if (run_dir / name).is_file():
            links.append((name.removesuffix(".png"), Path(os.path.relpath(run_dir / name, folder)).as_posix()))
    return links


def report_markdown(metrics: dict, per_class: list[list], clusters: list[list], abstain: dict | None,
                    links: list[tuple[str, str]], predictions: str) -> str:
    """report.md: metrics, the abstain counts, per-class and novel-cluster tables, plot links."""
    lines = [f"# Test report: {metrics.get('checkpoint', '')}", "",
             f"Epoch {metrics.get('epoch')}, {metrics.get('label_space', '')}, {metrics['num_test']} test images, "
             f"{metrics.get('valid_prototypes')} valid prototypes. Per image: [{predictions}]({predictions}).", "",
             "## Metrics (%)", "", markdown_table(["", "all", "known", "novel"], metric_rows(metrics)), ""]
    for line in discovery_lines(metrics):
        lines += [f"{line[0].upper()}{line[1:]}.", ""]
    if abstain is None:
        lines += ["The model carries no abstain threshold: no test image is called unknown.", ""]
    else:
        (known, known_total), (novel, novel_total) = abstain["known"], abstain["novel"]
        lines += [f"Called unknown (prototype similarity below {abstain['threshold']:.4f}): {known} of "
                  f"{known_total} test images of known classes, {novel} of {novel_total} of novel classes "
                  f"(not counted in the metrics, which take every image's nearest class).", ""]
    novel = [row for row in clusters[1:] if row[2] == "novel"]
    held = [row for row in novel if row[3]]
    lines += ["## Per class", "", markdown_table(per_class[0], per_class[1:]), "", "## Novel clusters", ""]
    if held:
        lines += ["Purity: the share of a prototype's test images that are of the class it is matched to; largest: "
                  f"its most frequent class. {len(novel) - len(held)} of {len(novel)} novel prototypes hold no test "
                  "image (listed in clusters.csv only).", "", markdown_table(clusters[0], held), ""]
    else:
        lines += [no_novel_cluster(len(novel)), ""]
    lines += ["## Plots", "", *[f"- [{name}]({link})" for name, link in links], ""]
    return "\n".join(lines)


def _share(value) -> str:
    return "" if value is None else f"{value:.4f}"

