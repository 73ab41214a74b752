"""Flat, validated configuration: defaults in configs/base.py, an experiment
file that changes a few keys, and ``key=value`` overrides on the command line.

A config is a plain dict with attribute access. configs/base.py holds the keys
every run shares; a method brings its own keys (``<method>_*``) as a ``Section``
that models/ registers with the method, and a config holds base.py's keys and
its method's. Every key keeps the type of its default; values are range-checked
before any work starts, so a typo or a bad value costs one line, not a run.
"""
from __future__ import annotations

import ast
import json
import logging
import re
import runpy
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
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


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    """A method's own config keys: ``keys`` maps each to (default, one-line help); ``rules``
    to (check, requirement) as ``RULES`` does; ``resume_fixed`` / ``resume_inert`` join
    ``RESUME_FIXED`` / ``RESUME_INERT``; ``renamed`` maps an older key name to one of ``keys``
    (older configs and checkpoints still load), ``aliases`` an older value of a key to its value
    now (as ``ALIASES``); ``recorded`` completes a config recorded by
    older code with the values its run used; ``unknown_k``: the method can run with an unknown
    number of classes."""
    keys: dict[str, tuple]
    rules: dict[str, tuple[Callable, str]] = field(default_factory=dict)
    resume_fixed: tuple[str, ...] = ()
    resume_inert: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    recorded: Callable[[dict], dict] | None = None
    unknown_k: bool = False

    def defaults(self) -> dict:
        return {key: default for key, (default, _) in self.keys.items()}


SECTIONS: dict[str, Section] = {}  # method name -> its keys (models/method.py registers them with the method)


def register_section(method: str, section: Section) -> None:
    """Make ``section`` the keys of ``method``; a key that base.py or another method already has is refused."""
    taken = {key: "configs/base.py" for key in base_defaults()}
    taken.update({key: f"method {name}" for name, other in SECTIONS.items() if name != method for key in other.keys})
    clashes = [f"{key} ({taken[key]})" for key in section.keys if key in taken]
    if clashes:
        raise ValueError(f"method {method}'s config keys are taken already: {', '.join(clashes)}")
    SECTIONS[method] = section


def section_of(method: str) -> Section:
    """The keys of ``method``; a ConfigError naming the registered methods when there is none.
    The methods register when the models package is imported (every entry point does)."""
    if method not in SECTIONS:
        known = ", ".join(sorted(SECTIONS)) or "none (import models first: it registers them)"
        raise ConfigError(f"method={method!r} is not a method of this code; valid: {known}")
    return SECTIONS[method]


def base_defaults() -> Config:
    """The defaults of configs/base.py, read afresh (environment variables included)."""
    return Config(_public_values(runpy.run_path(str(BASE_CONFIG))))


def defaults(method: str | None = None, base: Config | None = None) -> Config:
    """base.py's defaults (``base`` when already read) and those of ``method`` (default: base.py's)."""
    cfg = Config(base) if base is not None else base_defaults()
    cfg.method = cfg.method if method is None else method
    cfg.update(section_of(cfg.method).defaults())
    return cfg


def _owner(key: str) -> str | None:
    """The method whose section has ``key`` (None: no method's)."""
    return next((name for name, section in SECTIONS.items() if key in section.keys), None)


def _current_name(key: str) -> str:
    """``key``, or the name it has now when a method renamed it."""
    return next((section.renamed[key] for section in SECTIONS.values() if key in section.renamed), key)


# Older values of a key that still mean something: amp was a boolean (true: bf16).
FLOAT_TUPLES = ("input_mean", "input_std")  # tuple keys of floats; other tuples hold integers
ALIASES = {"amp": {"true": "bf16", "false": "fp32", "1": "bf16", "0": "fp32"}}


def coerce(key: str, value, default):
    """Convert ``value`` to the type of ``default`` or raise a ConfigError naming the key."""
    aliases = ALIASES.get(key) or next((s.aliases[key] for s in SECTIONS.values() if key in s.aliases), None)
    if aliases and isinstance(value, (bool, int, str)):
        value = aliases.get(str(value).strip().lower(), value)
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


def merge(base: Config, updates: dict, source: str, recorded: bool = False) -> Config:
    """Apply ``updates`` to a copy of ``base``, rejecting unknown keys and wrong types. A renamed
    key is read under its current name; a key of another method than ``base``'s is left out,
    with a warning unless the updates are a ``recorded`` config (older runs recorded every
    method's keys)."""
    merged = Config(base)
    for key, value in updates.items():
        key = _current_name(key)
        if key in base:
            merged[key] = coerce(key, value, base[key])
        elif (owner := _owner(key)) is not None:
            if not recorded:
                log.warning("%s sets %s, a key of method %s: method=%s has no use for it", source, key, owner,
                            base.method)
        else:
            raise ConfigError(f"unknown config key {key!r} in {source}{_closest(key, base)}; every key is listed "
                              f"in configs/base.py or, for method={base.method}, in docs/configuration.md")
    return merged


def method_of(values: dict, fallback: str) -> str:
    """The ``method`` a dict of config values names, else ``fallback``."""
    method = values.get("method", fallback)
    return coerce("method", method, "")


def recorded_config(values: dict, source: str) -> Config:
    """A config recorded by a run (a checkpoint's, config.json, an export's), completed with the
    defaults of keys added since and read under today's key names; not yet validated."""
    method = method_of(values, "cal")  # runs recorded before the method key existed were CAL's
    section = section_of(method)
    values = section.recorded(values) if section.recorded else values
    return merge(defaults(method), values, source, recorded=True)


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None) -> Config:
    """Resolve defaults <- experiment file <- overrides, then validate.

    The file is an experiment ``.py`` given by the user (it is executed) or a
    run's recorded ``config.json`` (only parsed); any other suffix is refused.
    """
    items = (parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides)) if overrides else {}
    values, recorded = {}, False
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
            recorded = True
        else:
            sys.modules.pop("configs.base", None)  # re-read environment-dependent defaults
            values = _public_values(runpy.run_path(str(path)))
            values.setdefault("experiment", path.stem)
            if values["experiment"] == "base" and path.resolve() != BASE_CONFIG:
                values["experiment"] = path.stem
    base = base_defaults()
    method = method_of(items, method_of(values, base.method))
    cfg = defaults(method, base)
    if recorded:
        cfg = merge(cfg, recorded_config(values, str(path)), str(path), recorded=True)
    elif path is not None:
        cfg = merge(cfg, {k: v for k, v in values.items() if k not in base or v != base[k]}, str(path))
    if items:
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
                "crop_face", "face_margin", "align_face", "backbone", "input_mean", "input_std", "unknown_k",
                "batch_size", "seed", "method")


# Keys a resumed run could not apply: they act only when a run starts, or are restored with the
# method's state (the ACR thresholds), so an override would be recorded but have no effect.
RESUME_INERT = ("prototype_init_std", "pretrained", "pretrained_path", "experiment")


RESUME_REFUSALS = (  # (keys, why a resume refuses them), checked in this order
    (CLASS_KEYS, "keeps its classes, but {listed} would change which classes are known to the model it trained"),
    (RESUME_INERT, "cannot apply {listed}: these act only when a run starts or are restored with the method's "
                   "state (e.g. CAL's ACR thresholds)"),
    (RESUME_FIXED, "cannot change {listed}: these keys shape its data, model or step"),
)


def resume_changes(saved: Config, cfg: Config) -> dict:
    """Keys ``cfg`` changes relative to the run's ``saved`` config, as key -> [old, new];
    a ConfigError listing them when any of them is in RESUME_FIXED, RESUME_INERT or the
    class keys (with the method's own fixed and inert keys)."""
    changed = {k: [saved.get(k), cfg[k]] for k in cfg if cfg[k] != saved.get(k) and k not in ("resume", "run_dir")}
    section = section_of(saved.method)
    extra = {RESUME_INERT: section.resume_inert, RESUME_FIXED: section.resume_fixed}
    for keys, reason in RESUME_REFUSALS:
        refused = [k for k in (*keys, *extra.get(keys, ())) if k in changed]
        if refused:
            listed = ", ".join(f"{k} ({changed[k][0]!r} -> {changed[k][1]!r})" for k in refused)
            raise ConfigError(f"a resumed run {reason.format(listed=listed)}; start a new run instead (python "
                              f"train.py RUN_DIR/config.json key=value ...)")
    return changed


# ---------------------------------------------------------------- validation
def between(lo, hi, lo_open=False, hi_open=False):
    def check(v):
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
    return check, f"must lie in {lb}{lo}, {hi}{rb}"


POSITIVE = (lambda v: v > 0, "must be positive")
NON_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
AT_LEAST_ONE = (lambda v: v >= 1, "must be >= 1")
UNIT = between(0.0, 1.0)

RULES = {
    "protocol": AT_LEAST_ONE,  # defined by the class table: dataset.protocols.label_space checks it
    "known_classes": (lambda v: len(set(v)) == len(v) and all(i >= 0 for i in v),
                      "must list distinct class indices >= 0, e.g. known_classes=0,1,3"),
    "epochs": AT_LEAST_ONE,
    "batch_size": AT_LEAST_ONE,
    "test_batch_size": AT_LEAST_ONE,
    "image_size": between(1, MAX_IMAGE_SIZE),
    "num_workers": NON_NEGATIVE,
    "log_every": AT_LEAST_ONE,
    "real_source_cap": AT_LEAST_ONE,
    "budget_real": AT_LEAST_ONE,
    "budget_known": AT_LEAST_ONE,
    "budget_novel": AT_LEAST_ONE,
    "budget_scale": POSITIVE,
    "train_fraction": between(0.0, 1.0, lo_open=True, hi_open=True),
    "prop_train_labels": between(0.0, 1.0, lo_open=True),
    "face_margin": (lambda v: v >= 1.0, "must be >= 1.0 (1.0 is the bare detector box)"),
    "dropout": between(0.0, 1.0, hi_open=True),
    "prototype_init_std": POSITIVE,
    "lr": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "lr_step": AT_LEAST_ONE,
    "lr_gamma": between(0.0, 1.0, lo_open=True),
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
}


def validate(cfg: Config) -> None:
    """Raise a one-line ConfigError for the first out-of-range value."""
    section = section_of(cfg.method)
    for key, (ok, requirement) in {**RULES, **section.rules}.items():
        if not ok(cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} {requirement}; fix it in the config file or with {key}=...")
    if cfg.unknown_k and not section.unknown_k:
        raise ConfigError(f"method={cfg.method} needs a known number of classes; set unknown_k=false "
                          f"(counting the novel classes is CAL's)")
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
