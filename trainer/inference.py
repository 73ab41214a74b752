"""Attribute images with a trained model (predict.py, test.py --save_predictions).

A model comes from a training checkpoint, a run directory (its last.pt), an
export folder (export.py) or ``hf://REPO_ID[@rev]``; all of them load into one
checkpoint-like dict (``load_model_state``). Images go through the model's own
face crop (through the crop cache) and evaluation view, in batches; each
prediction is named: a known prototype by its class, a novel prototype j as
``novel-<j>``, followed by `` (~Class)`` when the final evaluation's Hungarian
matching paired it with a test class, or by a user's name (``--names``).
"""
from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.image_io import is_image_file
from dataset.protocols import REAL_CLASS, LabelSpace, known_classes, label_map, label_names, label_space
from trainer.checkpoint import CheckpointError, load_checkpoint
from trainer.hub import HUB_PREFIX

COLUMNS = ("path", "predicted", "confidence", "is_real", "top3", "error")
TEST_COLUMNS = ("path", "true") + COLUMNS[1:]


def class_table(protocol: int | LabelSpace) -> list[dict]:
    """Per model label: ``label``, original ``index``, display ``name``, ``known``, ``real``
    (``protocol``: an OWDFA-40 protocol number or any label space)."""
    known, names = set(known_classes(protocol)), label_names(protocol)
    return [{"label": label, "index": index, "name": names[label], "known": index in known,
             "real": index == REAL_CLASS}
            for index, label in sorted(label_map(protocol).items(), key=lambda item: item[1])]


def space_of(config: dict) -> LabelSpace:
    """The label space a run's saved config trained on (older configs lack the table keys)."""
    return label_space({"classes_file": "", "known_classes": (), **config})


def restore_method(cfg, state: dict, device):
    """CAL built from ``cfg`` with the weights (and valid prototype count) of
    ``state``, placed on ``device`` for evaluation."""
    from models.cal import CAL
    from trainer.device import place_model

    method = CAL(cfg, state["num_known"], state["num_classes"])
    method.net.load_state_dict(state["model"])
    place_model(method.model, device, cfg.channels_last, cfg.cudnn_benchmark)
    return method


def load_model_state(source: str, trust: bool = False) -> dict:
    """Checkpoint-like dict (config, model, num_known, num_classes, epoch,
    classes, cluster_assignment, split_fingerprint, ...) from any model source
    (``trust``: see ``trainer.checkpoint.load_checkpoint``)."""
    from trainer.export import read_export

    if source.startswith(HUB_PREFIX):
        from trainer.hub import download

        return read_export(download(source))
    path = Path(source)
    if (path / "model.safetensors").is_file():
        return read_export(path)
    if (path / "checkpoints" / "last.pt").is_file():
        path = path / "checkpoints" / "last.pt"
    elif path.is_dir():
        raise CheckpointError(f"{source} is a folder but neither an export (model.safetensors + config.json) nor "
                              f"a run directory (checkpoints/last.pt); pass one of those or a .pt checkpoint")
    state = load_checkpoint(path, trust=trust)
    state.setdefault("classes", class_table(space_of(state["config"])))
    return state


def read_names(path: str | os.PathLike) -> dict[int, str]:
    """A two-column CSV ``prototype,name`` (prototype as ``j`` or ``novel-<j>``;
    a header row is allowed) -> {j: name}."""
    names = {}
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            key = row[0].strip().removeprefix("novel-")
            if len(row) != 2 or not key.isdigit():
                if number == 1 and len(row) == 2:
                    continue  # header
                raise ValueError(f"{path}, line {number}: expected two columns `prototype,name` with prototype "
                                 f"an index j or novel-<j>, got {row!r}")
            names[int(key)] = row[1].strip()
    return names


def prototype_names(state: dict, overrides: dict[int, str] | None = None) -> list[str]:
    """Display name of each valid prototype (see the module docstring)."""
    classes, num_known = state["classes"], state["num_known"]
    valid = int(state["model"]["prototypes.valid"])
    matched = {a["prototype"]: a["label"] for a in state.get("cluster_assignment") or []}
    names = []
    for j in range(valid):
        if j < num_known:
            names.append(classes[j]["name"])
        else:
            names.append(f"novel-{j}" + (f" (~{classes[matched[j]]['name']})" if j in matched else ""))
    for j, name in (overrides or {}).items():
        if not 0 <= j < valid:
            raise ValueError(f"--names renames prototype {j}, but the model has prototypes 0..{valid - 1}")
        names[j] = name
    return names


def real_prototypes(state: dict) -> set[int]:
    """Prototypes whose prediction means "real": the known real class."""
    return {c["label"] for c in state["classes"][: state["num_known"]] if c["real"]}


@dataclass
class Attributor:
    """A loaded model with its names, ready for ``predict_paths``."""
    cfg: dict
    method: object
    device: object
    names: list[str]
    real: set[int]

    @classmethod
    def load(cls, source: str, device: str | None = None, names_file: str | None = None,
             trust: bool = False) -> "Attributor":
        from trainer.distributed import resolve_device
        from utils.config import defaults, merge

        state = load_model_state(source, trust)
        cfg = merge(merge(defaults(), state["config"], source), {"pretrained": False, "resume": ""}, "inference")
        torch_device = resolve_device(device or "auto")
        method = restore_method(cfg, state, torch_device)
        names = prototype_names(state, read_names(names_file) if names_file else None)
        return cls(cfg, method, torch_device, names, real_prototypes(state))

    def predict_paths(self, paths: list[str], batch_size: int | None = None, num_workers: int | None = None,
                      crop_cache_dir: str | None = None, progress: bool = True) -> list[dict]:
        """One CSV row (``COLUMNS``) per path, in order; unreadable files give error rows."""
        from dataset.owdfa import EvalSet, image_loader, shutdown_workers
        from trainer.device import use_bf16
        from trainer.evaluation import predict

        cfg = self.cfg
        workers = cfg.num_workers if num_workers is None else num_workers
        reader = input_reader(cfg, paths, crop_cache_dir, workers)
        dataset = EvalSet(paths, np.full(len(paths), -1), reader, cfg.image_size)
        loader = image_loader(dataset, batch_size or cfg.test_batch_size, workers,
                              pin_memory=self.device.type == "cuda")
        try:
            out = predict(self.method.predict, self.method.model, loader, self.device,
                          use_bf16(cfg.amp, cfg.image_size), cfg.channels_last, progress=progress)
        finally:
            shutdown_workers(loader)
        return prediction_rows(paths, out, self.names, self.real)


def input_reader(cfg, paths: list[str], crop_cache_dir: str | None, workers: int):
    """The training reader for arbitrary files: with ``crop_face`` the faces
    are detected once and kept in a crop cache beside the inputs (by default
    ``<their common folder>/../owdfa_crop_cache``)."""
    from dataset.owdfa import ImageReader, build_reader
    from utils.config import Config

    if not cfg.crop_face or not paths:
        return ImageReader()
    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    local = Config({**cfg, "dataset_root": root, "crop_cache_dir": crop_cache_dir or "", "num_workers": workers})
    return build_reader(local, dict.fromkeys(paths, -1))[0]


def collect_inputs(inputs: list[str], stdin=None) -> list[str]:
    """Image paths from files (kept as given, readable or not), folders
    (image files below them, recursively, sorted) and ``-`` (one path per
    line of stdin)."""
    paths = []
    for item in inputs:
        if item == "-":
            paths += [line.strip() for line in (stdin or sys.stdin) if line.strip()]
        elif os.path.isdir(item):
            paths += sorted(os.path.join(folder, name) for folder, _, files in os.walk(item)
                            for name in files if is_image_file(name))
        else:
            paths.append(item)
    return paths


def format_top(names: list[str], index: np.ndarray, prob: np.ndarray) -> str:
    return "; ".join(f"{names[j]}:{p:.4f}" for j, p in zip(index.tolist(), prob.tolist()))


def prediction_rows(paths: list[str], out: dict, names: list[str], real: set[int],
                    true_names: list[str] | None = None) -> list[dict]:
    """CSV rows from ``trainer.evaluation.predict``'s output over ``paths``
    (``true_names``: the true class of every path, for test.py)."""
    rows = [{"path": p, "predicted": "", "confidence": "", "is_real": "", "top3": "", "error": ""} for p in paths]
    for position, index in enumerate(out["index"].tolist()):
        pred = int(out["pred"][position])
        rows[index].update(predicted=names[pred], confidence=f"{out['confidence'][position]:.4f}",
                           is_real=str(pred in real).lower(),
                           top3=format_top(names, out["top_index"][position], out["top_prob"][position]))
    for index, reason in out["errors"].items():
        rows[index]["error"] = reason
    if true_names is not None:
        rows = [{"path": r["path"], "true": t, **{k: r[k] for k in COLUMNS[1:]}} for r, t in zip(rows, true_names)]
    return rows


def write_csv(rows: list[dict], path: str | os.PathLike | None, columns=COLUMNS) -> None:
    """Rows to ``path`` (stdout when None)."""
    if path is None:
        _write_rows(rows, sys.stdout, columns)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        _write_rows(rows, handle, columns)


def _write_rows(rows, handle, columns) -> None:
    writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def summary(rows: list[dict]) -> str:
    """Images per predicted class (most first) and the unreadable ones."""
    counts = Counter(r["predicted"] for r in rows if not r["error"])
    errors = sum(1 for r in rows if r["error"])
    width = max([len(name) for name in counts] + [10])
    lines = [f"{len(rows)} images: {len(rows) - errors} attributed, {errors} unreadable"]
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in counts.most_common()]
    return "\n".join(lines)
