"""test.py --save_predictions: the per-image CSV of the test split plus
per_class.csv and confusion.csv / confusion.png beside it."""
from __future__ import annotations

from pathlib import Path

from inference.names import prototype_names, real_prototypes
from inference.predictions import TEST_COLUMNS, prediction_rows, write_csv, write_table
from utils.metrics import aligned_confusion, per_class_accuracy


def save_test_report(path: str | Path, out: dict, split, state: dict) -> list[Path]:
    """Write the four files for the predictions ``out`` (trainer.evaluation.predict)
    over ``split``'s test images; returns their paths."""
    from utils.plotting import plot_confusion

    path = Path(path)
    folder = path.parent
    classes, names = state["classes"], prototype_names(state)
    class_names = [c["name"] for c in classes]
    true_names = [class_names[label] for label in split.test_labels.tolist()]
    write_csv(prediction_rows(split.test_paths, out, names, real_prototypes(state), true_names), path, TEST_COLUMNS)

    per_class = folder / "per_class.csv"
    table = [["label", "class", "set", "images", "correct", "accuracy", "prototype"]]
    for row in per_class_accuracy(out["label"], out["pred"], state["num_known"], len(classes)):
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        prototype = "" if row["prototype"] is None else names[row["prototype"]]
        table.append([row["label"], class_names[row["label"]], "known" if row["known"] else "novel",
                      row["images"], row["correct"], accuracy, prototype])
    write_table(per_class, table)

    matrix, order = aligned_confusion(out["label"], out["pred"], len(classes), len(names))
    column_names = [names[p] for p in order]
    confusion = folder / "confusion.csv"
    write_table(confusion, [["true", "set", *column_names]] +
                [[class_names[c], "known" if classes[c]["known"] else "novel", *counts]
                 for c, counts in enumerate(matrix.tolist())])
    plot_confusion(matrix, class_names, column_names, state["num_known"], folder / "confusion.png")
    return [path, per_class, confusion, folder / "confusion.png"]
