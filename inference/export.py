"""The shareable form of a trained model: an export folder, no pickle.

    model.safetensors   the network's weights and buffers (the valid prototype
                        count is the buffer ``prototypes.valid``); no optimiser
    config.json         the resolved training config, protocol, class table,
                        valid prototype count, cluster names (the final
                        evaluation's Hungarian assignment), abstain threshold,
                        split fingerprint, the epoch and its metrics
    README.md           a model card generated from config.json

It goes into a new or empty folder or over an earlier export (its three files replaced); each
file is written whole, and ``.export-incomplete`` marks the folder until all three are.
``read_export`` turns the folder back into the checkpoint-like dict that test.py and predict.py
use, reading only tensors and JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

from dataset.protocols import class_fingerprint, describe_class_change
from inference.names import class_table, no_novel_cluster, prototype_names, space_of
from inference.predictions import OutputError
from models.method import upgrade_config
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.disk import write_atomic
from utils.text import percent

EXPORT_FORMAT = "owdfa-cal-export/1"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
INCOMPLETE = ".export-incomplete"  # present while an export is being written


def checkpoint_of(source: str | Path, which: str = "last") -> Path:
    """A run directory's ``checkpoints/<which>.pt``, or ``source`` itself when it is a file."""
    source = Path(source)
    return source if source.is_file() else source / "checkpoints" / f"{which}.pt"


def export_info(state: dict) -> dict:
    """What config.json holds, from a training checkpoint (plain JSON types)."""
    classes = state.get("classes") or class_table(space_of(state["config"]))
    state = {**state, "classes": classes}
    names = prototype_names(state)
    record = next((r for r in state.get("history") or [] if r.get("epoch") == state["epoch"]), {})
    metric_keys = ("all_acc", "known_acc", "novel_acc", "nmi", "ari", "num_test", "k_novel_estimate", "k_novel_true",
                   "novel_prototypes_used")
    return {
        "format": EXPORT_FORMAT,
        "protocol": state["config"]["protocol"],
        "num_known": state["num_known"],
        "num_classes": state["num_classes"],
        "valid_prototypes": int(state["model"]["prototypes.valid"]),
        "epoch": state["epoch"],
        "selected_on_test_set": bool(state.get("selected_on_test_set")),
        "split_fingerprint": state.get("split_fingerprint"),
        "class_fingerprint": class_fingerprint(classes),
        "metrics": {k: record[k] for k in metric_keys if k in record},
        "classes": classes,
        "cluster_assignment": [{**a, "name": names[a["prototype"]]}
                               for a in state.get("cluster_assignment") or []],
        "abstain": state.get("abstain"),
        "config": state["config"],
    }


def export_checkpoint(checkpoint: str | Path, out: str | Path, trust: bool = False) -> Path:
    """Write the export folder of ``checkpoint`` to ``out``; returns ``out``."""
    from safetensors.torch import save

    from inference.export_schema import check_checkpoint

    state = check_checkpoint(load_checkpoint(checkpoint, trust=trust), checkpoint)
    info = export_info(state)
    info["source_checkpoint"] = str(checkpoint)
    out = Path(out)
    check_export_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
    (out / INCOMPLETE).touch()
    # the weights file keeps its own copy of the class table, to name what an edit of config.json changed;
    # written as any file is (the umask's mode, 0644 under the usual 022), so the export can be shared
    write_atomic(out / WEIGHTS, save(weights, metadata={"format": EXPORT_FORMAT, "classes": json.dumps(info["classes"]),
                                                        "class_fingerprint": info["class_fingerprint"]}))
    write_atomic(out / CONFIG, json.dumps(info, indent=2) + "\n")
    write_card(out)
    (out / INCOMPLETE).unlink()
    return out


def check_export_folder(out: str | Path) -> None:
    """``out`` may take an export: new, empty, or an earlier (or interrupted) export; a folder of
    anything else is refused, so that no file of its own is replaced."""
    out = Path(out)
    if not out.is_dir() or (out / INCOMPLETE).exists():
        return
    names = sorted(p.name for p in out.iterdir())
    try:
        earlier = json.loads((out / CONFIG).read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        earlier = False
    if names and not earlier:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise OutputError(f"--out {out} holds files that are not an export ({shown}); an export writes "
                          f"{WEIGHTS}, {CONFIG} and {CARD}, replacing files of those names: choose a new or empty "
                          f"folder, e.g. --out {out / 'export'}")


def write_card(folder: str | Path, repo_id: str | None = None) -> None:
    """(Re)write the export's README.md; its commands load ``repo_id`` from the hub when given
    (once it is pushed there), else the folder."""
    folder = Path(folder)
    write_atomic(folder / CARD, model_card(json.loads((folder / CONFIG).read_text()), repo_id))


def read_export(folder: str | Path, allow_class_change: bool = False) -> dict:
    """The checkpoint-like dict of an export folder (weights as tensors), once config.json passes
    its schema, the class table its fingerprint, and the tensors their checks (inference.export_schema);
    ``allow_class_change`` accepts a class table that no longer matches its fingerprint."""
    from safetensors import SafetensorError, safe_open

    from inference.export_schema import check_info, check_weights

    folder = Path(folder)
    if (folder / INCOMPLETE).exists():
        raise CheckpointError(f"export {folder} was interrupted while it was written ({INCOMPLETE} is there); "
                              f"export it again with `python export.py --ckpt RUN_DIR --out {folder}`")
    missing = [name for name in (WEIGHTS, CONFIG) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a complete export: {', '.join(missing)} missing; "
                              f"write one with `python export.py --ckpt RUN_DIR --out {folder}`")
    try:
        info = json.loads((folder / CONFIG).read_text())
    except (ValueError, OSError) as err:
        raise CheckpointError(f"export {folder} cannot be read ({type(err).__name__}: {err}); export it again "
                              f"with `python export.py --ckpt RUN_DIR --out {folder}`") from err
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise CheckpointError(f"{folder / CONFIG} has format {found!r}, not {EXPORT_FORMAT!r}: it "
                              f"was not written by this code's export.py")
    if isinstance(info.get("config"), dict):
        info["config"] = upgrade_config(info["config"])
    cfg = check_info(info, folder / CONFIG)
    try:
        with safe_open(str(folder / WEIGHTS), framework="pt") as handle:
            metadata = handle.metadata() or {}
        check_classes(info, metadata, folder, allow_class_change)
        model = check_weights(folder / WEIGHTS, cfg, info)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"export {folder} cannot be read ({type(err).__name__}: {err}); export it again "
                              f"with `python export.py --ckpt RUN_DIR --out {folder}`") from err
    return {**info, "model": model, "source": str(folder)}


def check_classes(info: dict, metadata: dict, folder: Path, allow: bool) -> None:
    """config.json's class table must match the fingerprint recorded with it (in config.json and the
    weights file); a table edited since is refused, naming the rows that changed."""
    recorded = metadata.get("class_fingerprint") or info.get("class_fingerprint")
    if recorded is None or recorded == class_fingerprint(info["classes"]) or allow:
        return
    try:
        original = json.loads(metadata["classes"])
        unchanged = class_fingerprint(original) == recorded
    except (KeyError, ValueError, TypeError, AttributeError):
        original = None
    if original is not None and not unchanged:
        raise CheckpointError(f"the header of {folder / WEIGHTS} records a class table that does not match its own "
                              f"fingerprint {recorded[:12]}: the header was edited or damaged; export the run again "
                              f"with `python export.py --ckpt RUN_DIR --out {folder}`")
    what = (describe_class_change(original, info["classes"]) if original is not None else
            "the original table is not recorded, so the rows cannot be named")
    raise CheckpointError(f"the class table in {folder / CONFIG} no longer matches its fingerprint "
                          f"{recorded[:12]} (edited since export): {what}; export the run again, or pass "
                          f"--allow_class_change to use the table as it is")


def task_of(config: dict) -> tuple[str, str]:
    """(class table, task) a run's config names: ``("OWDFA-40", "protocol 1")`` or, for a custom
    table with a known set, ``("my_classes.csv", "known 0,3,8")``."""
    table = Path(config["classes_file"]).name if config.get("classes_file") else "OWDFA-40"
    known = sorted(config.get("known_classes") or ())
    return table, ("known " + ",".join(map(str, known)) if known else f"protocol {config['protocol']}")


def novel_clusters(info: dict, named: list[str]) -> list[str]:
    """The card's novel-cluster lines: the matched prototypes' table rows ``named`` under their
    header, or report.md's sentence when no novel prototype holds a test image."""
    if named:
        return ["Hungarian assignment of the final evaluation (test images of the class on the prototype, of all "
                "test images on it):", "", "| prototype | shown as | images |", "|---|---|---|", *named]
    used = info["metrics"].get("novel_prototypes_used")
    if used:
        return [f"{used} novel prototypes hold test images; the final evaluation matched none of them to a class."]
    return [no_novel_cluster(info["valid_prototypes"] - info["num_known"])]


def model_card(info: dict, repo_id: str | None = None) -> str:
    """A Markdown model card (Hugging Face front matter) for an export, from its config.json: the
    run's own class table, task, data and metrics; hub commands only for a ``repo_id`` pushed to."""
    from models.method import METHODS

    cfg, metrics = info["config"], info["metrics"]
    method = METHODS[cfg.get("method", "cal")]
    table, task = task_of(cfg)
    known = [c["name"] for c in info["classes"] if c["known"]]
    novel = [c["name"] for c in info["classes"] if not c["known"]]
    named = [f"| {a['prototype']} | {a['name']} | {a['images']} of {a['predicted']} |"
             for a in info["cluster_assignment"] if a["prototype"] >= info["num_known"]]
    selection = ("best epoch by all_acc on the test set (optimistic)" if info["selected_on_test_set"]
                 else "last epoch")
    source = f"hf://{repo_id}" if repo_id else "EXPORT_DIR"
    data_root = Path(cfg["dataset_root"]).name if cfg.get("dataset_root") else "not recorded"
    lines = [
        "---", "library_name: pytorch", "tags:", "- deepfake-attribution", "- open-world", "- safetensors", "---",
        "", f"# {method.NAME} deepfake attribution: {table} {task}", "",
        f"Open-world deepfake attribution with {method.NAME} ({method.TITLE}): {method.describe(cfg)} "
        f"with {info['valid_prototypes']} valid prototypes "
        f"({info['num_known']} known classes; {'unknown' if cfg['unknown_k'] else 'known'} number of novel "
        "classes).", "",
        "## Data", "",
        f"Class table {table} ({info['num_classes']} classes), {task}: {len(known)} known (labelled) and "
        f"{len(novel)} novel classes; images from the dataset folder `{data_root}`, split seed "
        f"{cfg['split_seed']}, face crop {'on' if cfg['crop_face'] else 'off'}, {cfg['image_size']} px input. "
        f"Split fingerprint: `{info['split_fingerprint'] or 'not recorded'}`; class table fingerprint: "
        f"`{info.get('class_fingerprint') or 'not recorded'}`.", "",
        f"Known classes: {', '.join(known)}.", "",
        f"Novel classes: {', '.join(novel) or 'none'}.", "",
        "## Metrics", "",
        f"Test split of that data, epoch {info['epoch']} ({selection}"
        f"{'' if metrics.get('num_test') is None else ', ' + str(metrics['num_test']) + ' test images'}).", "",
        "| all ACC | known ACC | novel ACC | NMI | ARI |", "|---|---|---|---|---|",
        "| " + " | ".join(percent(metrics.get(k)) for k in ("all_acc", "known_acc", "novel_acc", "nmi", "ari"))
        + " |", "",
        "## Novel clusters", "",
        *novel_clusters(info, named), "",
        "## Use", "",
        "```bash",
        f"python predict.py --ckpt {source} IMAGE_OR_FOLDER... --out predictions.csv",
        f"python test.py --ckpt {source} --dataset_root /path/to/{data_root if cfg.get('dataset_root') else 'data'}",
        "```", "",
    ]
    return "\n".join(lines)
