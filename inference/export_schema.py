"""What an export folder, or a checkpoint, must hold before anything is built from it.

``check_info`` validates config.json against its schema: required keys and types, the training
config (every key known, of its type, in range), and the model's description
(``description_problem``): 2 <= classes <= MAX_CLASSES, 1 <= known <= classes, one class row per
class with its label in order, the known rows first, the abstain threshold's fields and ranges when
there is one, a cluster assignment that names valid prototypes and classes. ``check_weights`` reads
model.safetensors' header (names, shapes, dtypes, no data) and compares it with the network the
config describes, built on PyTorch's meta device (no memory), then checks that the tensors are
finite, batch-norm variances not negative and the valid prototype count fits (``weights_problem``).
``check_checkpoint`` puts a training checkpoint through the same checks. Every problem is one
CheckpointError line naming the field and the fix.
"""
from __future__ import annotations

from pathlib import Path

from utils.checkpoint import CheckpointError
from discovery.abstain import RULE

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
    problem = description_problem(info, info["valid_prototypes"])
    if problem:
        fail(problem)
    return _config_of(info["config"], f"{where} (config)", fail)


def description_problem(info: dict, valid: int) -> str | None:
    """The first thing wrong with what names and judges a model's predictions, or None: class
    counts and rows, the abstain threshold, the cluster assignment (``valid``: the number of valid
    prototypes). ``info``: an export's config.json or a checkpoint."""
    classes, known, rows = info.get("num_classes"), info.get("num_known"), info.get("classes")
    for key, value in (("num_classes", classes), ("num_known", known)):
        if not _is(value, int):
            return f"{key} is {type(value).__name__} {value!r:.40}, not an integer"
    if not 2 <= classes <= MAX_CLASSES:
        return f"num_classes={classes} is outside [2, {MAX_CLASSES}]"
    if not 1 <= known <= classes:
        return f"num_known={known} is outside [1, num_classes={classes}]"
    if not isinstance(rows, list) or len(rows) != classes:
        return f"lists {len(rows) if isinstance(rows, list) else 'no'} classes, but num_classes={classes}"
    for label, row in enumerate(rows):
        bad = [k for k, kind in ROW.items() if not isinstance(row, dict) or not _is(row.get(k), kind)]
        if bad:
            return f"class row {label} lacks or mistypes {', '.join(bad)} (each row: label, index, name, known, real)"
        if row["label"] != label:
            return f"class row {label} has label {row['label']}; rows are in label order 0..{classes - 1}"
    roles = [row["known"] for row in rows]
    if roles != [True] * known + [False] * (classes - known):
        return f"{sum(roles)} classes are marked known, but num_known={known} (known classes come first)"
    return abstain_problem(info.get("abstain")) or assignment_problem(info.get("cluster_assignment"), valid, classes)


def abstain_problem(abstain) -> str | None:
    """What is wrong with an abstain threshold (discovery/abstain.py), or None (also for no threshold)."""
    if abstain is None:
        return None
    if not isinstance(abstain, dict):
        return f"abstain is {type(abstain).__name__} {abstain!r:.40}, not an object or null"
    bad = [k for k, kind in ABSTAIN.items() if not _is(abstain.get(k), kind)]
    if bad or abstain["rule"] != RULE:
        return f"abstain lacks or mistypes {', '.join(bad) or 'rule'} (rule {RULE!r}, threshold, accept, images)"
    if not (-1 <= abstain["threshold"] <= 1 and 0 < abstain["accept"] <= 1 and abstain["images"] >= 1):
        return (f"abstain has threshold {abstain['threshold']!r}, accept {abstain['accept']!r}, images "
                f"{abstain['images']!r}: the threshold is a cosine in [-1, 1], accept a share in (0, 1], images "
                f"at least 1")
    return None


def assignment_problem(assignment, valid: int, classes: int) -> str | None:
    """What is wrong with a cluster assignment (utils/metrics.py), or None."""
    if assignment is None:
        return None
    if not isinstance(assignment, list):
        return f"cluster_assignment is {type(assignment).__name__}, not a list"
    for entry in assignment:
        fields = entry if isinstance(entry, dict) else {}
        counts = [fields.get(k) for k in ("images", "predicted") if k in fields]
        if not (_is(fields.get("prototype"), int) and 0 <= fields["prototype"] < valid
                and _is(fields.get("label"), int) and 0 <= fields["label"] < classes
                and all(_is(n, int) and n >= 0 for n in counts) and counts == sorted(counts)):
            return (f"cluster_assignment entry {entry!r:.80} needs a prototype in [0, {valid}), a label in "
                    f"[0, {classes}) and 0 <= images <= predicted")
    return None


def check_checkpoint(state, where, allow_class_change: bool = False) -> dict:
    """``state``, a training checkpoint, once it holds a model and a config, its config is valid, its
    description passes ``description_problem``, its weights fit the network the config describes
    (``weights_problem``) and its class table its fingerprint (``allow_class_change``: a table edited
    since is used, with a warning); CheckpointError otherwise. Fills in the class table of checkpoints
    written before they held one (from the config's classes_file)."""
    import sys

    import torch

    from dataset.protocols import class_fingerprint
    from inference.names import class_table, space_of

    def fail(problem: str):
        raise CheckpointError(f"checkpoint {where}: {problem}; it was edited or damaged since training: use the "
                              f"run's other checkpoint (last.pt / best.pt), or train again")

    if not isinstance(state, dict) or not isinstance(state.get("config"), dict) \
            or not isinstance(state.get("model"), dict) or not torch.is_tensor(state["model"].get("prototypes.valid")):
        raise CheckpointError(f"checkpoint {where} holds no model and config (prototypes.valid, config); pass a "
                              f"run's checkpoints/last.pt or best.pt")
    if "classes" not in state:
        state["classes"] = class_table(space_of(state["config"]))
    cfg = _config_of(state["config"], f"{where} (config)", fail)
    problem = description_problem(state, int(state["model"]["prototypes.valid"]))
    if problem:
        fail(problem)
    if any(not torch.is_tensor(t) for t in state["model"].values()):
        fail("its model holds entries that are not tensors")
    problem = weights_problem(cfg, state, {name: (tuple(t.shape), _safetensors_dtype(t.dtype))
                                           for name, t in state["model"].items()}, state["model"])
    if problem:
        fail(problem)
    recorded = state.get("class_fingerprint")
    if recorded is not None and recorded != class_fingerprint(state["classes"]):
        message = (f"the class table in checkpoint {where} no longer matches its fingerprint {recorded[:12]}"
                   f"{class_edits(state, recorded)}")
        if not allow_class_change:
            raise CheckpointError(f"{message} (edited since training); use the run's other checkpoint, or pass "
                                  f"--allow_class_change to use the table as it is")
        print(f"warning: {message}; using it as it is (--allow_class_change)", file=sys.stderr)
    return state


def _config_of(config: dict, source: str, fail):
    """The resolved, validated training config of one recorded in ``source``; ``fail(problem)`` when invalid."""
    from utils.config import ConfigError, recorded_config, validate

    try:
        cfg = recorded_config(config, source)
        cfg.pretrained, cfg.resume = False, ""
        validate(cfg)
    except ConfigError as err:
        fail(f"its training config is invalid: {err}")
    return cfg


def class_edits(state: dict, recorded: str) -> str:
    """``": label 1: name 'A' -> 'B'"``: how a checkpoint's class table differs from the one its config's
    classes_file gives, when that one has the recorded fingerprint; "" when the rows cannot be named."""
    from dataset.protocols import ClassTableError, class_fingerprint, describe_class_change
    from inference.names import class_table, space_of

    try:
        original = class_table(space_of(state["config"]))
    except (ClassTableError, OSError, KeyError, ValueError, TypeError):
        return ""
    return f": {describe_class_change(original, state['classes'])}" if class_fingerprint(original) == recorded else ""


def weights_problem(cfg, info: dict, found: dict[str, tuple[tuple, str]], load) -> str | None:
    """What is wrong with a model's tensors, or None: ``found`` (name -> (shape, safetensors dtype))
    must match the network of ``cfg`` with ``info``'s class counts; then ``load`` (name -> tensor, a
    mapping or a safetensors handle's ``get_tensor``) gives tensors that must be finite, with batch-norm
    variances >= 0 and ``num_known <= prototypes.valid <= prototype rows``."""
    import torch

    from models.method import create_network

    with torch.device("meta"):
        expected = create_network(cfg, info["num_known"], info["num_classes"]).state_dict()
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or extra:
        return (f"{len(missing)} tensors missing (e.g. {missing[:2]}) and {len(extra)} unexpected (e.g. "
                f"{extra[:2]}) for a {cfg.backbone} with these classes")
    for name, want in expected.items():
        shape, dtype = found[name]
        if shape != tuple(want.shape) or dtype != _safetensors_dtype(want.dtype):
            return (f"tensor {name} is {dtype}{list(shape)}, expected {_safetensors_dtype(want.dtype)}"
                    f"{list(want.shape)} ({info['num_classes']} classes, {info['num_known']} known)")
    get = load.__getitem__ if isinstance(load, dict) else load
    model = {name: get(name) for name in expected}
    bad = [name for name, tensor in model.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        return f"{len(bad)} tensors hold NaN or infinite values (e.g. {bad[0]})"
    bad = [name for name, tensor in model.items() if name.endswith("running_var") and (tensor < 0).any()]
    if bad:
        return f"{len(bad)} batch-norm variances are negative (e.g. {bad[0]}), which makes every output NaN"
    rows, valid = model["prototypes.weight"].shape[0], int(model["prototypes.valid"])
    if not info["num_known"] <= valid <= rows:
        return f"prototypes.valid={valid} is outside [num_known={info['num_known']}, {rows} prototype rows]"
    return None


def check_weights(weights: Path, cfg, info: dict) -> dict:
    """The tensors of ``weights`` (name -> tensor), once they pass ``weights_problem`` and hold
    config.json's ``valid_prototypes``."""
    from safetensors import safe_open

    def fail(problem: str):
        raise CheckpointError(f"{weights}: {problem}; export the run again with `python export.py --ckpt RUN_DIR --out "
                              f"{weights.parent}`")

    with safe_open(str(weights), framework="pt") as handle:
        found = {}
        for name in handle.keys():
            header = handle.get_slice(name)
            found[name] = (tuple(header.get_shape()), header.get_dtype())
        problem = weights_problem(cfg, info, found, handle.get_tensor)
        if problem:
            fail(problem)
        model = {name: handle.get_tensor(name) for name in found}
    if int(model["prototypes.valid"]) != info["valid_prototypes"]:
        fail(f"holds {int(model['prototypes.valid'])} valid prototypes, but config.json says valid_prototypes="
             f"{info['valid_prototypes']}")
    return model


def _safetensors_dtype(dtype) -> str:
    import torch

    return {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16"}.get(dtype,
                                                                                                     str(dtype))


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "text", int: "an integer", list: "a list", dict: "an object", bool: "true/false",
                        type(None): "null"}[k] for k in kinds)
