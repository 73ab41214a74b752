"""Flat, validated configuration: defaults in configs/base.py, an experiment
file that changes a few keys, and ``key=value`` overrides on the command line.

A config is a plain dict with attribute access. Every key must exist in
configs/base.py and keep the type of its default; values are range-checked
before any work starts, so a typo or a bad value costs one line, not a run.
"""
from __future__ import annotations

import ast
import json
import re
import runpy
import sys
import types
from pathlib import Path

BASE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "base.py"
MAX_IMAGE_SIZE = 4096  # px per side; far beyond any face crop, still below absurd allocations
MAX_BATCH_BYTES = 32 * 2**30  # float32 input views of one batch (training: weak + strong)
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the fix."""


class Config(dict):
    """A dict whose keys are also attributes (``cfg.lr``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def _public_values(namespace: dict) -> dict:
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))}


def defaults() -> Config:
    """The defaults of configs/base.py, read afresh (environment variables included)."""
    return Config(_public_values(runpy.run_path(str(BASE_CONFIG))))


# Older values of a key that still mean something: amp was a boolean (true: bf16).
FLOAT_TUPLES = ("input_mean", "input_std")  # tuple keys of floats; other tuples hold integers
ALIASES = {"amp": {"true": "bf16", "false": "fp32", "1": "bf16", "0": "fp32"}}


def coerce(key: str, value, default):
    """Convert ``value`` to the type of ``default`` or raise a ConfigError naming the key."""
    if key in ALIASES and isinstance(value, (bool, int, str)):
        value = ALIASES[key].get(str(value).strip().lower(), value)
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE | _FALSE:
            return str(value).strip().lower() in _TRUE
    elif kind is int:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            literal = _literal(value)
            return literal if isinstance(literal, str) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif kind is tuple:  # of integers (floats for FLOAT_TUPLES): "0,1,3", "(0, 1, 3)", a JSON list, or one number
        if isinstance(value, str):
            value = _literal(value) if value.strip() else ()
        floats = key in FLOAT_TUPLES
        number = (int, float) if floats else int
        value = (value,) if isinstance(value, number) and not isinstance(value, bool) else value
        if isinstance(value, (list, tuple)) and all(isinstance(v, number) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value) if floats else tuple(value)
        raise ConfigError(f"{key}={value!r}: expected {'numbers like 0.5,0.5,0.5' if floats else 'integers like 0,1,3'}")
    raise ConfigError(f"{key}={value!r}: expected a {kind.__name__} like the default {default!r}")


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: list[str]) -> dict:
    """``["lr=1e-3", "acr=false"]`` -> ``{"lr": "1e-3", "acr": "false"}`` (raw strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. epochs=5)")
        out[key.strip()] = value
    return out


def _closest(key: str, known) -> str:
    import difflib
    match = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def merge(base: Config, updates: dict, source: str) -> Config:
    """Apply ``updates`` to a copy of ``base``, rejecting unknown keys and wrong types."""
    merged = Config(base)
    for key, value in updates.items():
        if key not in base:
            raise ConfigError(f"unknown config key {key!r} in {source}{_closest(key, base)}; "
                              f"every key is listed in configs/base.py")
        merged[key] = coerce(key, value, base[key])
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Resolve defaults <- experiment file <- overrides, then validate.

    The file is an experiment ``.py`` given by the user (it is executed) or a
    run's recorded ``config.json`` (only parsed); any other suffix is refused.
    """
    cfg = defaults()
    if path is not None:
        path = Path(path)
        if path.suffix not in (".py", ".json"):
            raise ConfigError(f"config file {str(path)!r} is neither an experiment .py file nor a run's "
                              f"config.json; pass one of configs/*.py or exp/<experiment>/<stamp>/config.json")
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass one of configs/*.py "
                              f"or a run's config.json")
        if path.suffix == ".json":
            # a run's resolved config: rerunning it starts a new run
            values = {k: v for k, v in read_json_config(path).items() if k not in ("run_dir", "resume")}
        else:
            sys.modules.pop("configs.base", None)  # re-read environment-dependent defaults
            values = _public_values(runpy.run_path(str(path)))
            values.setdefault("experiment", path.stem)
            if values["experiment"] == "base" and path.resolve() != BASE_CONFIG:
                values["experiment"] = path.stem
        cfg = merge(cfg, {k: v for k, v in values.items() if k not in cfg or v != cfg[k]}, str(path))
    if overrides:
        items = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        cfg = merge(cfg, items, "the command line")
    validate(cfg)
    return cfg


def read_json_config(path: str | Path) -> dict:
    """A recorded config (config.json): a JSON object of key -> value, never code."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read as JSON ({err})") from err
    if not isinstance(values, dict):
        raise ConfigError(f"config file {str(path)!r} is not a JSON object of key: value")
    return values


# Keys that shape the data, the model or a step: a resumed run keeps them.
CLASS_KEYS = ("protocol", "known_classes")  # which classes are known; classes_file is checked by its content
RESUME_FIXED = ("dataset_root", "split_seed", "split_file", "real_source_cap", "budget_real",
                "budget_known", "budget_novel", "budget_scale", "train_fraction", "prop_train_labels", "image_size",
                "crop_face", "face_margin", "align_face", "backbone", "input_mean", "input_std", "frequency_attention",
                "unknown_k", "prototypes_per_known", "batch_size", "seed", "method", "cpl_parts",
                "simgcd_projection_dim", "simgcd_hidden_dim", "simgcd_mlp_layers")


# Keys a resumed run could not apply: they act only when a run starts, or are restored with the
# method's state (the ACR thresholds), so an override would be recorded but have no effect.
RESUME_INERT = ("gamma", "acr_asymmetric", "prototype_init_std", "pretrained", "pretrained_path", "experiment")


RESUME_REFUSALS = (  # (keys, why a resume refuses them), checked in this order
    (CLASS_KEYS, "keeps its classes, but {listed} would change which classes are known to the model it trained"),
    (RESUME_INERT, "cannot apply {listed}: these act only when a run starts or are restored with the method's "
                   "state (ACR thresholds)"),
    (RESUME_FIXED, "cannot change {listed}: these keys shape its data, model or step"),
)


def resume_changes(saved: Config, cfg: Config) -> dict:
    """Keys ``cfg`` changes relative to the run's ``saved`` config, as key -> [old, new];
    a ConfigError listing them when any of them is in RESUME_FIXED."""
    changed = {k: [saved[k], cfg[k]] for k in cfg if cfg[k] != saved[k] and k not in ("resume", "run_dir")}
    for keys, reason in RESUME_REFUSALS:
        refused = [k for k in keys if k in changed]
        if refused:
            listed = ", ".join(f"{k} ({changed[k][0]!r} -> {changed[k][1]!r})" for k in refused)
            raise ConfigError(f"a resumed run {reason.format(listed=listed)}; start a new run instead (python "
                              f"train.py RUN_DIR/config.json key=value ...)")
    return changed


# ---------------------------------------------------------------- validation
def _between(lo, hi, lo_open=False, hi_open=False):
    def check(v):
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
    return check, f"must lie in {lb}{lo}, {hi}{rb}"


_POSITIVE = (lambda v: v > 0, "must be positive")
_NON_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
_AT_LEAST_ONE = (lambda v: v >= 1, "must be >= 1")
_UNIT = _between(0.0, 1.0)

METHOD_NAMES = ("cal", "cpl", "simgcd")  # models/methods.py maps each to its class

RULES = {
    "method": (lambda v: v in METHOD_NAMES, f"must be one of {', '.join(METHOD_NAMES)} (docs/baselines.md)"),
    "protocol": _AT_LEAST_ONE,  # defined by the class table: dataset.protocols.label_space checks it
    "known_classes": (lambda v: len(set(v)) == len(v) and all(i >= 0 for i in v),
                      "must list distinct class indices >= 0, e.g. known_classes=0,1,3"),
    "epochs": _AT_LEAST_ONE,
    "batch_size": _AT_LEAST_ONE,
    "test_batch_size": _AT_LEAST_ONE,
    "image_size": _between(1, MAX_IMAGE_SIZE),
    "num_workers": _NON_NEGATIVE,
    "log_every": _AT_LEAST_ONE,
    "real_source_cap": _AT_LEAST_ONE,
    "budget_real": _AT_LEAST_ONE,
    "budget_known": _AT_LEAST_ONE,
    "budget_novel": _AT_LEAST_ONE,
    "budget_scale": _POSITIVE,
    "train_fraction": _between(0.0, 1.0, lo_open=True, hi_open=True),
    "prop_train_labels": _between(0.0, 1.0, lo_open=True),
    "face_margin": (lambda v: v >= 1.0, "must be >= 1.0 (1.0 is the bare detector box)"),
    "dropout": _between(0.0, 1.0, hi_open=True),
    "prototype_init_std": _POSITIVE,
    "prototypes_per_known": _AT_LEAST_ONE,
    "prune_coverage": _between(0.0, 1.0, lo_open=True),
    "prune_start": _NON_NEGATIVE,
    "posthoc_epoch": _NON_NEGATIVE,
    "prune_max_drop": _between(0.0, 1.0, lo_open=True),
    "novel_k_source": (lambda v: v in ("dpp", "posthoc"), "must be 'dpp' (the paper) or 'posthoc'"),
    "prune_anchor_norm": (lambda v: v in ("unit", "members"), "must be 'unit' (the paper) or 'members'"),
    "prune_optimizer_state": (lambda v: v in ("keep", "move"), "must be 'keep' (the release) or 'move'"),
    "tau_student": _POSITIVE,
    "tau_teacher": _POSITIVE,
    "reg_weight": _NON_NEGATIVE,
    "tau_prior": _POSITIVE,
    "ccr_weight": _NON_NEGATIVE,
    "acr_weight": _NON_NEGATIVE,
    "pseudo_start": _NON_NEGATIVE,
    "gamma": _UNIT,
    "lr": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
    "lr_step": _AT_LEAST_ONE,
    "lr_gamma": _between(0.0, 1.0, lo_open=True),
    "device": (lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None,
               "must be auto, cpu, cuda or cuda:N"),
    "nonfinite_loss": (lambda v: v in ("stop", "skip"), "must be 'stop' or 'skip'"),
    "backbone": (lambda v: bool(v.strip()), "must name a timm model, e.g. resnet50"),
    # in units of pixel values scaled to [0, 1], like timm's; NaN fails every comparison
    "input_mean": (lambda v: len(v) in (0, 3) and all(0 <= m <= 1 for m in v),
                   "must be empty (the backbone's) or 3 numbers in [0, 1], e.g. 0.5,0.5,0.5"),
    "input_std": (lambda v: len(v) in (0, 3) and all(0.001 <= s <= 1 for s in v),
                  "must be empty (the backbone's) or 3 numbers in [0.001, 1], e.g. 0.5,0.5,0.5"),
    "amp": (lambda v: v in ("auto", "bf16", "fp32"), "must be 'auto', 'bf16' or 'fp32' (true/false: bf16/fp32)"),
    "cpl_parts": _AT_LEAST_ONE,
    "cpl_margin": _NON_NEGATIVE,
    "cpl_glv_weight": _NON_NEGATIVE,
    "cpl_csp_weight": _NON_NEGATIVE,
    "cpl_entropy_weight": _NON_NEGATIVE,
    "simgcd_sup_weight": _UNIT,
    "simgcd_memax_weight": _NON_NEGATIVE,
    "simgcd_student_temperature": _POSITIVE,
    "simgcd_teacher_temperature": _POSITIVE,
    "simgcd_warmup_teacher_temperature": _POSITIVE,
    "simgcd_warmup_teacher_epochs": _AT_LEAST_ONE,
    "simgcd_unsup_temperature": _POSITIVE,
    "simgcd_supcon_temperature": _POSITIVE,
    "simgcd_projection_dim": _AT_LEAST_ONE,
    "simgcd_hidden_dim": _AT_LEAST_ONE,
    "simgcd_mlp_layers": _AT_LEAST_ONE,
}


def validate(cfg: Config) -> None:
    """Raise a one-line ConfigError for the first out-of-range value."""
    for key, (ok, requirement) in RULES.items():
        if not ok(cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} {requirement}; fix it in the config file or with {key}=...")
    if cfg.method != "cal" and cfg.unknown_k:
        raise ConfigError(f"method={cfg.method} needs a known number of classes; set unknown_k=false "
                          f"(prototype pruning and the post-hoc K seeding are CAL's)")
    for key, views in (("batch_size", 2), ("test_batch_size", 1)):
        size = cfg[key] * views * 3 * cfg.image_size ** 2 * 4
        if size > MAX_BATCH_BYTES:
            raise ConfigError(f"{key}={cfg[key]} at image_size={cfg.image_size} needs {size / 2**30:.0f} GiB for "
                              f"one batch's input{' views' if views > 1 else 's'} alone (limit "
                              f"{MAX_BATCH_BYTES // 2**30} GiB); lower {key} or image_size")
    if cfg.resume and not any((Path(cfg.resume) / name).is_file() for name in ("checkpoints/last.pt",
                                                                              "config.json")):
        raise ConfigError(f"resume={cfg.resume!r} has no checkpoints/last.pt and no config.json; pass the run "
                          f"directory of an earlier run (exp/<experiment>/<timestamp>)")
