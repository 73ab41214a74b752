"""What an export folder must hold before anything is built from it.

``check_info`` validates config.json against its schema: required keys and
types, the training config (every key known, of its type, in range), and
ranges: 2 <= classes <= MAX_CLASSES, 1 <= known <= classes, one class row per
class with its label in order, the known rows first, and the abstain threshold's
fields when there is one. ``check_weights`` reads
model.safetensors' header (names, shapes, dtypes, no data) and compares it
with the network the config describes, built on PyTorch's meta device (no
memory), then checks that the tensors are finite and the valid prototype count
fits. Every problem is one CheckpointError line naming the field and the fix.
"""
from __future__ import annotations

from pathlib import Path

from trainer.checkpoint import CheckpointError
from utils.abstain import RULE

MAX_CLASSES = 10_000
REQUIRED = {"format": str, "protocol": int, "num_known": int, "num_classes": int, "valid_prototypes": int,
            "epoch": int, "classes": list, "config": dict}
OPTIONAL = {"split_fingerprint": (str, type(None)), "class_fingerprint": str, "cluster_assignment": list,
            "metrics": dict, "selected_on_test_set": bool, "source_checkpoint": str, "abstain": (dict, type(None))}
ROW = {"label": int, "index": int, "name": str, "known": bool, "real": bool}
ABSTAIN = {"rule": str, "threshold": (float, int), "accept": (float, int), "images": int}


def _is(value, kinds) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def check_info(info, where: Path):
    """The resolved training config of a valid config.json ``info``; CheckpointError otherwise."""
    from utils.config import ConfigError, defaults, merge, validate

    def fail(problem: str):
        raise CheckpointError(f"{where}: {problem}; export the run again with "
                              f"`python export.py --ckpt RUN_DIR --out DIR`")

    if not isinstance(info, dict):
        fail("is not a JSON object")
    for key, kind in {**REQUIRED, **OPTIONAL}.items():
        if key not in info:
            if key in REQUIRED:
                fail(f"lacks the key {key!r}")
        elif not _is(info[key], kind):
            fail(f"{key} is {type(info[key]).__name__} {info[key]!r:.40}, not {_names(kind)}")
    classes, known = info["num_classes"], info["num_known"]
    if not 2 <= classes <= MAX_CLASSES:
        fail(f"num_classes={classes} is outside [2, {MAX_CLASSES}]")
    if not 1 <= known <= classes:
        fail(f"num_known={known} is outside [1, num_classes={classes}]")
    rows = info["classes"]
    if len(rows) != classes:
        fail(f"lists {len(rows)} classes, but num_classes={classes}")
    for label, row in enumerate(rows):
        bad = [k for k, kind in ROW.items() if not isinstance(row, dict) or not _is(row.get(k), kind)]
        if bad:
            fail(f"class row {label} lacks or mistypes {', '.join(bad)} (each row: label, index, name, known, real)")
        if row["label"] != label:
            fail(f"class row {label} has label {row['label']}; rows are in label order 0..{classes - 1}")
    abstain = info.get("abstain")
    if abstain is not None:
        bad = [k for k, kind in ABSTAIN.items() if not _is(abstain.get(k), kind)]
        if bad or abstain["rule"] != RULE:
            fail(f"abstain lacks or mistypes {', '.join(bad) or 'rule'} (rule {RULE!r}, threshold, accept, images)")
    roles = [row["known"] for row in rows]
    if roles != [True] * known + [False] * (classes - known):
        fail(f"{sum(roles)} classes are marked known, but num_known={known} (known classes come first)")
    try:
        cfg = merge(defaults(), info["config"], f"{where} (config)")
        cfg.pretrained, cfg.resume = False, ""
        validate(cfg)
    except ConfigError as err:
        fail(f"its training config is invalid: {err}")
    return cfg


def check_weights(weights: Path, cfg, info: dict) -> dict:
    """The tensors of ``weights`` (name -> tensor), once they match the network of ``cfg`` (names,
    shapes, dtypes), are finite and hold config.json's ``valid_prototypes``."""
    import torch
    from safetensors import safe_open

    from models.methods import create_network

    def fail(problem: str):
        raise CheckpointError(f"{weights}: {problem}; export the run again with `python export.py --ckpt RUN_DIR --out "
                              f"{weights.parent}`")

    with torch.device("meta"):
        expected = create_network(cfg, info["num_known"], info["num_classes"]).state_dict()
    with safe_open(str(weights), framework="pt") as handle:
        names = set(handle.keys())
        missing, extra = sorted(expected.keys() - names), sorted(names - expected.keys())
        if missing or extra:
            fail(f"{len(missing)} tensors missing (e.g. {missing[:2]}) and {len(extra)} unexpected (e.g. "
                 f"{extra[:2]}) for a {cfg.backbone} with these classes")
        for name, want in expected.items():
            found = handle.get_slice(name)
            shape, dtype = tuple(found.get_shape()), found.get_dtype()
            if shape != tuple(want.shape) or dtype != _safetensors_dtype(want.dtype):
                fail(f"tensor {name} is {dtype}{list(shape)}, expected {_safetensors_dtype(want.dtype)}"
                     f"{list(want.shape)} (config.json: {info['num_classes']} classes, {info['num_known']} known)")
        model = {name: handle.get_tensor(name) for name in expected}
    bad = [name for name, tensor in model.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        fail(f"{len(bad)} tensors hold NaN or infinite values (e.g. {bad[0]})")
    rows, valid = model["prototypes.weight"].shape[0], int(model["prototypes.valid"])
    if not info["num_known"] <= valid <= rows:
        fail(f"prototypes.valid={valid} is outside [num_known={info['num_known']}, {rows} prototype rows]")
    if valid != info["valid_prototypes"]:
        fail(f"holds {valid} valid prototypes, but config.json says valid_prototypes={info['valid_prototypes']}")
    return model


def _safetensors_dtype(dtype) -> str:
    import torch

    return {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16"}.get(dtype,
                                                                                                     str(dtype))


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "text", int: "an integer", list: "a list", dict: "an object", bool: "true/false",
                        type(None): "null"}[k] for k in kinds)
