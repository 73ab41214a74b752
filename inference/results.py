"""Aggregate finished runs into mean ± std tables (scripts/aggregate.py is the command line).

Runs are grouped by task, K setting, method, split (split.json's fingerprint)
and every config key that changes results (all but seeds, paths and speed
knobs: RUN_ONLY_KEYS); groups of one task that differ are labelled by what
differs. The task is the protocol (``P1``) for the shipped OWDFA-40 table; for
a custom table (``classes_file``) the table's file name and the protocol or
known set (``classes.csv known 0,3,8``). Each group reports the last epoch's
All / Known / Novel ACC, NMI, ARI and, with unknown K, the estimated total
number of classes (known + novel), as mean ± sample std over runs, beside the
per-run values. The paper's numbers (METHOD.md section 8) stand beside a group
only when it is an OWDFA-40 protocol trained on the paper's recipe (the keys
of configs/owdfa40_p<N>[_wok].py); otherwise a note names what differs.
"""
from __future__ import annotations

import functools
import hashlib
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from utils.text import percent

# (key, column title, scale): the last epoch's metrics every table reports; discovery beside accuracy
# (utils/metrics.discovery_metrics): novel / known test images on a novel prototype, novel prototypes used.
METRICS = (("all_acc", "All", 100), ("known_acc", "Known", 100), ("novel_acc", "Novel", 100), ("nmi", "NMI", 100),
           ("ari", "ARI", 100), ("discovery_rate", "Discovery", 100), ("known_on_novel_rate", "Known on novel", 100),
           ("novel_prototypes_used", "Novel protos used", 1))
# METHOD.md section 8: All / Known / Novel ACC by (protocol, unknown K), and DPP's estimated total K.
PAPER_ACC = {(1, False): (88.3, 98.0, 76.5), (2, False): (82.8, 97.6, 67.5), (3, False): (91.0, 94.8, 80.3),
             (1, True): (87.5, 98.2, 74.5), (2, True): (80.0, 97.5, 63.0), (3, True): (91.5, 95.0, 83.2)}
PAPER_TOTAL_K = {1: 39, 2: 37, 3: 40}
# Keys that may differ between the runs of one group without making them different experiments.
RUN_ONLY_KEYS = {"seed", "run_dir", "resume", "experiment", "dataset_root", "crop_cache_dir", "device",
                 "num_workers", "log_every", "predictor_path", "split_file", "compile", "cudnn_benchmark",
                 "channels_last", "test_batch_size"}
# Keys a run may set otherwise and still compare with the paper: the class table's file (the task
# is judged by its content), how unknown K counts the novel classes (the paper's DPP or the post-hoc
# estimate), the split's seed, and numerics.
PAPER_FREE_KEYS = {"classes_file", "known_classes", "cal_novel_prototypes", "cal_seed_epoch", "cal_prune_start",
                   "cal_prune_max_drop", "cal_prune_anchor_norm", "cal_prune_optimizer_state", "split_seed", "amp",
                   "cal_fused_gate",
                   "gpu_augment", "sync_batchnorm", "nonfinite_loss"}
REPO_ROOT = Path(__file__).resolve().parent.parent


class ResultsError(ValueError):
    pass


@dataclass
class Run:
    path: Path
    config: dict
    last: dict  # the last epoch's record of metrics.jsonl
    split_fingerprint: str | None = None  # split.json's, recomputed from its images, once a caller sets it
    identity: str = ""  # sha256 of config.json and metrics.jsonl: the same run, wherever it is copied

    @property
    def total_k(self) -> tuple[int, int] | None:
        """(estimated, true) total number of classes, when the run estimated K."""
        if self.last.get("k_novel_estimate") is None:
            return None
        num_known = self.last["valid_prototypes"] - self.last["k_novel_estimate"]
        return self.last["valid_prototypes"], num_known + self.last["k_novel_true"]

    def settings(self) -> dict:
        """The config keys that change results, as JSON text."""
        return {k: json.dumps(v, sort_keys=True) for k, v in self.config.items() if k not in RUN_ONLY_KEYS}


@dataclass
class Group:
    task: str
    unknown_k: bool
    protocol: int | None  # an OWDFA-40 protocol on the paper's recipe, for the paper's numbers
    method: str = "cal"
    runs: list[Run] = field(default_factory=list)
    variant: str = ""  # what sets it apart from other groups of its task, K and method
    paper_differs: list[str] = field(default_factory=list)  # why the paper's numbers are not beside it

    @property
    def label(self) -> str:
        """The task, followed by the method's name unless it is CAL, and the variant."""
        label = self.task if self.method == "cal" else f"{self.task} {self.method}"
        return f"{label} [{self.variant}]" if self.variant else label

    @property
    def setting(self) -> str:
        return "unknown K" if self.unknown_k else "known K"

    def differing_keys(self) -> list[str]:
        keys = set().union(*(r.config for r in self.runs)) - RUN_ONLY_KEYS
        return sorted(k for k in keys if len({json.dumps(r.config.get(k)) for r in self.runs}) > 1)


def task_of(config: dict) -> tuple[str, int | None]:
    """(grouping label, OWDFA-40 protocol or None)."""
    known = config.get("known_classes") or ()
    table = Path(config["classes_file"]).name if config.get("classes_file") else ""
    if known:
        return f"{table or 'OWDFA-40'} known {','.join(map(str, sorted(known)))}", None
    if table:
        return f"{table} P{config['protocol']}", None
    return f"P{config['protocol']}", config["protocol"]


def read_run(path: str | Path) -> Run:
    """A finished run's config and last epoch; ResultsError (naming the path and why) otherwise."""
    path = Path(path)
    config_file, metrics_file = path / "config.json", path / "metrics.jsonl"
    if not config_file.is_file():
        raise ResultsError(f"{path} is not a run directory (needs config.json and metrics.jsonl)")
    try:  # no metrics.jsonl yet: stopped in its first epoch, unfinished like any other
        config_text = config_file.read_text()
        metrics_text = metrics_file.read_text() if metrics_file.is_file() else ""
        records = [json.loads(line) for line in metrics_text.splitlines() if line.strip()]
        config = json.loads(config_text)
        missing = [k for k in ("epochs", "seed", "protocol") if k not in config] if isinstance(config, dict) else \
            ["every key (it is not a JSON object)"]
        done = records[-1]["epoch"] + 1 if records else 0
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ResultsError(f"{path} has an unreadable config.json or metrics.jsonl ({type(err).__name__}: "
                           f"{err})") from None
    if missing:
        raise ResultsError(f"{path}/config.json lacks {', '.join(missing)}: it was not written by train.py")
    epochs = config["epochs"]
    if done < epochs:
        raise ResultsError(f"{path} is unfinished ({done} of {epochs} epochs); "
                           f"finish it with python train.py --resume {path}")
    identity = hashlib.sha256(config_text.encode() + b"\0" + metrics_text.encode()).hexdigest()
    return Run(path, config, records[-1], identity=identity)


def read_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """The finished runs among ``paths``, each once, and one line per path left out and why
    (not a run, unreadable, unfinished, or the same run as one given before it, by its
    resolved path or its content)."""
    runs, skipped, seen = [], [], {}
    for path in paths:
        try:
            run = read_run(path)
        except ResultsError as err:
            skipped.append(str(err))
            continue
        resolved = str(Path(path).resolve())
        earlier = seen.get(resolved) or seen.get(run.identity)
        if earlier:
            skipped.append(f"{path} is the same run as {earlier} (given twice, or a copy): counted once")
            continue
        seen[resolved] = seen[run.identity] = str(path)
        runs.append(run)
    return runs, skipped


@functools.lru_cache(maxsize=None)
def paper_config(protocol: int, unknown_k: bool) -> dict:
    """The resolved config of the paper's recipe for an OWDFA-40 protocol (configs/owdfa40_p<N>[_wok].py)."""
    import models  # noqa: F401  (registers the methods, whose keys the config holds)
    from utils.config import load_config

    name = f"owdfa40_p{protocol}{'_wok' if unknown_k else ''}.py"
    return json.loads(json.dumps(dict(load_config(REPO_ROOT / "configs" / name)), default=list))


def paper_differences(run: Run, protocol: int) -> list[str]:
    """``key value (paper value)`` for each result-changing key where ``run`` leaves the paper's recipe."""
    paper = paper_config(protocol, bool(run.config.get("unknown_k")))
    keys = sorted(set(run.config) & set(paper) - RUN_ONLY_KEYS - PAPER_FREE_KEYS)
    return [f"{k} {run.config[k]!r} (paper {paper[k]!r})" for k in keys
            if json.dumps(run.config[k], sort_keys=True) != json.dumps(paper[k], sort_keys=True)]


def default_owdfa40(config: dict) -> int | None:
    """The OWDFA-40 protocol of a config on the shipped table (no classes_file, no known set)."""
    return task_of(config)[1]


def group_runs(runs: list[Run], owdfa40_protocol=default_owdfa40) -> list[Group]:
    """Runs grouped by task, K setting, method, split fingerprint and result-changing keys (the
    variants of one task, K and method labelled by what differs). ``owdfa40_protocol(config)``:
    the OWDFA-40 protocol the run's class table is (dataset.protocols.owdfa40_protocol judges it
    by content), or None."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        task, _ = task_of(run.config)
        family = (task, bool(run.config.get("unknown_k")), method_of(run))
        key = family + (run.split_fingerprint or "", json.dumps(run.settings(), sort_keys=True))
        if key not in groups:
            groups[key] = Group(task, family[1], None, family[2])
        groups[key].runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.config["seed"], str(r.path)))
        protocol = owdfa40_protocol(group.runs[0].config) if group.method == "cal" else None
        if protocol is not None:
            group.paper_differs = sorted(set().union(*(paper_differences(r, protocol) for r in group.runs)))
            group.protocol = None if group.paper_differs else protocol
    _label_variants(list(groups.values()))
    return [groups[k] for k in sorted(groups)]


def _label_variants(groups: list[Group]) -> None:
    """Give the groups of one task, K and method a variant label: the keys whose values set them
    apart (``lr=0.001``), or the split's fingerprint when only the split does."""
    families: dict[tuple, list[Group]] = {}
    for g in groups:
        families.setdefault((g.task, g.unknown_k, g.method), []).append(g)
    for family in families.values():
        if len(family) < 2:
            continue
        settings = [g.runs[0].settings() for g in family]
        keys = sorted(k for k in set().union(*settings) if len({s.get(k) for s in settings}) > 1)
        for g, own in zip(family, settings):
            parts = [f"{k}={own[k].strip(chr(34)) if k in own else 'unset'}" for k in keys]
            if not parts or len({x.runs[0].split_fingerprint for x in family}) > 1:
                parts.append(f"split {(g.runs[0].split_fingerprint or 'unrecorded')[:8]}")
            g.variant = ", ".join(parts)


def mean_std(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``"88.3 ± 0.6"`` (sample std) over the values present; one value: just it; none: n/a."""
    values = [v * scale for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def run_value(value, scale: float) -> str:
    """One run's metric: a percentage for a share, the number itself for a count; n/a when missing."""
    if scale != 1:
        return percent(value)
    return "n/a" if value is None else f"{value:g}"


def summary_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "K", "seeds", *(title for _, title, _ in METRICS), "est. total K (true)",
              "paper All / Known / Novel"]
    rows = []
    for g in groups:
        cells = [g.label, g.setting, ", ".join(str(r.config["seed"]) for r in g.runs)]
        cells += [mean_std([r.last.get(key) for r in g.runs], scale) for key, _, scale in METRICS]
        k = [r.total_k for r in g.runs if r.total_k]
        cells.append(f"{mean_std([e for e, _ in k], scale=1)} ({k[0][1]})" if k else "")
        paper = PAPER_ACC.get((g.protocol, g.unknown_k)) if g.method == "cal" else None
        k_paper = f" (K {PAPER_TOTAL_K[g.protocol]})" if paper and g.unknown_k else ""
        cells.append(" / ".join(map(str, paper)) + k_paper if paper else "")
        rows.append(cells)
    return header, rows


def per_run_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "K", "seed", *(title for _, title, _ in METRICS), "est. total K", "run"]
    rows = [[g.label, g.setting, str(r.config["seed"]), *(run_value(r.last.get(key), scale) for key, _, scale in METRICS),
             str(r.total_k[0]) if r.total_k else "", str(r.path)] for g in groups for r in g.runs]
    return header, rows


def notes(groups: list[Group]) -> list[str]:
    out = []
    for g in groups:
        if differing := g.differing_keys():
            out.append(f"{g.label}, {g.setting}: its runs differ in {', '.join(differing)}")
        if g.variant:
            out.append(f"{g.label}, {g.setting}: kept apart from the other {g.task} runs by {g.variant}")
        if g.paper_differs:
            shown = g.paper_differs[:6] + ([f"{len(g.paper_differs) - 6} more"] if len(g.paper_differs) > 6 else [])
            out.append(f"{g.label}, {g.setting}: no paper numbers, its recipe is not the paper's: "
                       + ", ".join(shown))
        seeds = [r.config["seed"] for r in g.runs]
        if len(set(seeds)) < len(seeds):
            out.append(f"{g.label}, {g.setting}: repeated seeds {sorted(seeds)}")
    return out


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(cell: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in cell).replace("±", r"$\pm$")


def latex(header: list[str], rows: list[list[str]], caption: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + _tex(caption) + "}",
             r"\begin{tabular}{" + "l" * 3 + "c" * (len(header) - 3) + "}", r"\toprule",
             " & ".join(map(_tex, header)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(_tex, row)) + r" \\" for row in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}"])


# ---------------------------------------------------------------- comparing methods
def method_of(run: Run) -> str:
    """The run's method (runs from before the ``method`` key are CAL's)."""
    return run.config.get("method", "cal")


def split_conflicts(groups: list[Group], fingerprints: dict[Path, str]) -> list[str]:
    """One line per task whose runs were trained on more than one split, naming
    each fingerprint's runs (``fingerprints``: run path -> its split.json fingerprint)."""
    by_task: dict[str, dict[str, list[str]]] = {}
    for g in groups:
        for r in g.runs:
            by_task.setdefault(g.task, {}).setdefault(fingerprints[r.path], []).append(str(r.path))
    return [f"{task}: the runs were trained on {len(splits)} different splits ("
            + "; ".join(f"{fp[:12]}: {', '.join(paths)}" for fp, paths in sorted(splits.items())) + ")"
            for task, splits in by_task.items() if len(splits) > 1]


def comparison_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    """One row per task, K setting, method and variant (``cal [cal_gamma=0.9]``): seeds and
    mean ± std of each metric."""
    header = ["task", "K", "method", "seeds", *(title for _, title, _ in METRICS)]
    rows = [[g.task, g.setting, f"{g.method} [{g.variant}]" if g.variant else g.method,
             ", ".join(str(r.config["seed"]) for r in g.runs),
             *(mean_std([r.last.get(key) for r in g.runs], scale) for key, _, scale in METRICS)] for g in groups]
    return header, rows
