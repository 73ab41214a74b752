"""Names of a model's classes and prototypes.

The class table lists every model label with its original index, display
name, known/novel role and whether it is the real class. A known prototype is
named by its class, a novel prototype j as ``novel-<j>``, followed by
`` (~Class, P% pure)`` when the final evaluation's Hungarian matching paired it
with a test class (P: the share of the test images on it that are of that
class), or by a user's name (``--names``).
"""
from __future__ import annotations

import csv
import os

from dataset.protocols import OWDFA40, LabelSpace, label_space


def class_table(protocol: int | LabelSpace) -> list[dict]:
    """Per model label: ``label``, original ``index``, display ``name``, ``family``, ``known``,
    ``real`` (``protocol``: an OWDFA-40 protocol number or any label space)."""
    return (protocol if isinstance(protocol, LabelSpace) else OWDFA40.protocol(protocol)).class_rows()


def space_of(config: dict) -> LabelSpace:
    """The label space a run's saved config trained on (older configs lack the table keys)."""
    return label_space({"classes_file": "", "known_classes": (), **config})


def read_names(path: str | os.PathLike) -> dict[int, str]:
    """A two-column CSV ``prototype,name`` (prototype as ``j`` or ``novel-<j>``;
    a header row is allowed; a spreadsheet's BOM is skipped) -> {j: name}."""
    names, lines = {}, {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            key = row[0].strip().removeprefix("novel-")
            if len(row) != 2 or not key.isdigit():
                if number == 1 and len(row) == 2:
                    continue  # header
                raise ValueError(f"{path}, line {number}: expected two columns `prototype,name` with prototype "
                                 f"an index j or novel-<j>, got {row!r}")
            if int(key) in names:
                raise ValueError(f"{path}, lines {lines[int(key)]} and {number}: both rename prototype {key}; "
                                 f"keep one")
            names[int(key)], lines[int(key)] = row[1].strip(), number
    return names


def prototype_names(state: dict, overrides: dict[int, str] | None = None) -> list[str]:
    """Display name of each valid prototype (see the module docstring)."""
    classes, num_known = state["classes"], state["num_known"]
    valid = int(state["model"]["prototypes.valid"])
    matched = {a["prototype"]: a for a in state.get("cluster_assignment") or []}
    names = []
    for j in range(valid):
        if j < num_known:
            names.append(classes[j]["name"])
        else:
            names.append(f"novel-{j}" + (f" (~{cluster_label(matched[j], classes)})" if j in matched else ""))
    for j, name in (overrides or {}).items():
        if not 0 <= j < valid:
            raise ValueError(f"--names renames prototype {j}, but the model has prototypes 0..{valid - 1}")
        names[j] = name
    return names


def purity(assignment: dict) -> float | None:
    """Share of the test images on a matched prototype that are of its matched class."""
    return assignment["images"] / assignment["predicted"] if assignment.get("predicted") else None


def cluster_label(assignment: dict, classes: list[dict]) -> str:
    """``Class, P% pure`` for one entry of a cluster assignment (``Class`` alone without counts)."""
    share = purity(assignment)
    name = classes[assignment["label"]]["name"]
    return name if share is None else f"{name}, {100 * share:.0f}% pure"


def no_novel_cluster(novel_prototypes: int) -> str:
    """What report.md and the model card say instead of an empty novel-cluster table."""
    return (f"None of the {novel_prototypes} novel prototypes holds a test image: every test image is predicted "
            "as a known class, so there is no novel cluster to list.")


def real_prototypes(state: dict) -> set[int]:
    """Prototypes whose prediction means "real": the known real class."""
    return {c["label"] for c in state["classes"][: state["num_known"]] if c["real"]}
