"""Aggregate finished runs into mean ± std tables (scripts/aggregate.py is the command line).

Runs are grouped by task, K setting and method (CAL's runs carry no
method label; a baseline's is named after the task, ``P1 cpl``). The task is the protocol (``P1``)
for the shipped OWDFA-40 table; for a custom table (``classes_file``) it is
the table's file name and the protocol or, with ``known_classes``, the
known set (``classes.csv known 0,3,8``). Each group reports the last epoch's
All / Known / Novel ACC, NMI, ARI and, with unknown K, the estimated total
number of classes (known + novel, as the paper reports it), as mean ± sample
std over runs, beside the per-run values and the paper's numbers
(METHOD.md section 8) where the task is an OWDFA-40 protocol.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

METRICS = (("all_acc", "All"), ("known_acc", "Known"), ("novel_acc", "Novel"), ("nmi", "NMI"), ("ari", "ARI"))
# METHOD.md section 8: All / Known / Novel ACC by (protocol, unknown K), and DPP's estimated total K.
PAPER_ACC = {(1, False): (88.3, 98.0, 76.5), (2, False): (82.8, 97.6, 67.5), (3, False): (91.0, 94.8, 80.3),
             (1, True): (87.5, 98.2, 74.5), (2, True): (80.0, 97.5, 63.0), (3, True): (91.5, 95.0, 83.2)}
PAPER_TOTAL_K = {1: 39, 2: 37, 3: 40}
# Keys that may differ between the runs of one group without making them different experiments.
RUN_ONLY_KEYS = {"seed", "run_dir", "resume", "experiment", "dataset_root", "crop_cache_dir", "device",
                 "num_workers", "log_every", "predictor_path", "split_file"}


class ResultsError(ValueError):
    pass


@dataclass
class Run:
    path: Path
    config: dict
    last: dict  # the last epoch's record of metrics.jsonl

    @property
    def total_k(self) -> tuple[int, int] | None:
        """(estimated, true) total number of classes, when the run estimated K."""
        if self.last.get("k_novel_estimate") is None:
            return None
        num_known = self.last["valid_prototypes"] - self.last["k_novel_estimate"]
        return self.last["valid_prototypes"], num_known + self.last["k_novel_true"]


@dataclass
class Group:
    task: str
    unknown_k: bool
    protocol: int | None  # an OWDFA-40 protocol, for the paper's numbers
    method: str = "cal"
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The task, followed by the method's name unless it is CAL."""
        return self.task if self.method == "cal" else f"{self.task} {self.method}"

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
    path = Path(path)
    config_file, metrics_file = path / "config.json", path / "metrics.jsonl"
    if not config_file.is_file() or not metrics_file.is_file():
        raise ResultsError(f"{path} is not a run directory (needs config.json and metrics.jsonl)")
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    config = json.loads(config_file.read_text())
    if not records or records[-1]["epoch"] + 1 < config["epochs"]:
        done = records[-1]["epoch"] + 1 if records else 0
        raise ResultsError(f"{path} is unfinished ({done} of {config['epochs']} epochs); "
                           f"finish it with python train.py --resume {path}")
    return Run(path, config, records[-1])


def group_runs(runs: list[Run]) -> list[Group]:
    groups: dict[tuple[str, bool], Group] = {}
    for run in runs:
        task, protocol = task_of(run.config)
        key = (task, bool(run.config.get("unknown_k")), method_of(run))
        groups.setdefault(key, Group(task, key[1], protocol, key[2])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.config["seed"], str(r.path)))
    return [groups[k] for k in sorted(groups)]


def mean_std(values: list[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``"88.3 ± 0.6"`` (sample std) over the values present; one value: just it; none: n/a."""
    values = [v * scale for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def summary_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "K", "seeds", *(title for _, title in METRICS), "est. total K (true)", "paper All / Known / Novel"]
    rows = []
    for g in groups:
        cells = [g.label, g.setting, ", ".join(str(r.config["seed"]) for r in g.runs)]
        cells += [mean_std([r.last.get(key) for r in g.runs]) for key, _ in METRICS]
        k = [r.total_k for r in g.runs if r.total_k]
        cells.append(f"{mean_std([e for e, _ in k], scale=1)} ({k[0][1]})" if k else "")
        paper = PAPER_ACC.get((g.protocol, g.unknown_k)) if g.method == "cal" else None
        k_paper = f" (K {PAPER_TOTAL_K[g.protocol]})" if paper and g.unknown_k else ""
        cells.append(" / ".join(map(str, paper)) + k_paper if paper else "")
        rows.append(cells)
    return header, rows


def per_run_rows(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "K", "seed", *(title for _, title in METRICS), "est. total K", "run"]
    rows = [[g.label, g.setting, str(r.config["seed"]), *(_pct(r.last.get(key)) for key, _ in METRICS),
             str(r.total_k[0]) if r.total_k else "", str(r.path)] for g in groups for r in g.runs]
    return header, rows


def notes(groups: list[Group]) -> list[str]:
    out = []
    for g in groups:
        if differing := g.differing_keys():
            out.append(f"{g.label}, {g.setting}: its runs differ in {', '.join(differing)}")
        seeds = [r.config["seed"] for r in g.runs]
        if len(set(seeds)) < len(seeds):
            out.append(f"{g.label}, {g.setting}: repeated seeds {sorted(seeds)}")
    return out


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


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
    """One row per task, K setting and method: seeds and mean ± std of each metric."""
    header = ["task", "K", "method", "seeds", *(title for _, title in METRICS)]
    rows = [[g.task, g.setting, g.method, ", ".join(str(r.config["seed"]) for r in g.runs),
             *(mean_std([r.last.get(key) for r in g.runs]) for key, _ in METRICS)] for g in groups]
    return header, rows
