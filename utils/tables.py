"""Metrics as text: the console table (with its discovery line and warning) and its rows,
shared by the training log, test.py and the test report."""
from __future__ import annotations

from utils.text import percent

METRIC_ROWS = (("ACC", ("all_acc", "known_acc", "novel_acc")), ("NMI", ("nmi", "nmi_known", "nmi_novel")),
               ("ARI", ("ari", "ari_known", "ari_novel")), ("conf", ("conf_all", "conf_known", "conf_novel")))


def metric_rows(metrics: dict) -> list[tuple[str, ...]]:
    """(name, all, known, novel) in percent per metric: the rows of ``format_table`` and of test reports."""
    return [(name, *(percent(metrics.get(key)) for key in keys)) for name, keys in METRIC_ROWS]


def discovery_line(metrics: dict) -> str | None:
    """One line on how the novel prototypes are used (utils/metrics.discovery_metrics), None without novel images."""
    if metrics.get("discovery_rate") is None:
        return None
    total = metrics.get("novel_prototypes")
    used = f"{metrics['novel_prototypes_used']}" + (f" of {total}" if total is not None else "")
    return (f"discovery: {percent(metrics['discovery_rate'])} % of novel test images on a novel prototype, "
            f"{percent(metrics.get('known_on_novel_rate'))} % of known ones; {used} novel prototypes hold a test image")


def discovery_warning(metrics: dict) -> str | None:
    """A one-line warning when no novel test image reaches a novel prototype, else None."""
    if metrics.get("discovery_rate") != 0:
        return None
    return ("warning: no novel test image is predicted as a novel prototype, so nothing was discovered: "
            "Novel ACC only measures how the novel classes spread over the known prototypes")


def discovery_lines(metrics: dict) -> list[str]:
    """The discovery line and its warning, those that apply (test.py's table, report.md)."""
    return [line for line in (discovery_line(metrics), discovery_warning(metrics)) if line]


def format_table(metrics: dict) -> str:
    """The metrics as a small ASCII table (percent), the discovery line and its warning."""
    rows = [("", "all", "known", "novel"), *metric_rows(metrics)]
    lines = ["  ".join(f"{cell:>6}" for cell in row) for row in rows]
    lines += discovery_lines(metrics)
    if metrics.get("k_novel_estimate") is not None:
        true = metrics.get("k_novel_true")
        lines.append(f"estimated novel K: {metrics['k_novel_estimate']}"
                     + (f" (true {true}, error {metrics['k_novel_estimate'] - true:+d})" if true is not None else ""))
    return "\n".join(lines)
