"""Mean ± std tables over finished runs (seeds), in Markdown and LaTeX.

    python scripts/aggregate.py exp/owdfa40_p*/*/ [--out results.md] [--latex results.tex]
    SEEDS="2025 2026 2027" bash scripts/train.sh && python scripts/aggregate.py exp/owdfa40_p?/*/

Runs are grouped by task (OWDFA-40 protocol, or a custom class table with its
protocol or known set), K setting, split and the config keys that change
results (inference/results.py); each group gives the last epoch's All / Known /
Novel ACC, NMI, ARI and estimated total K as mean ± sample std, the paper's
numbers for OWDFA-40 runs on the paper's recipe, and a per-run table. Prints
the Markdown. A folder that is not a finished run, a run given twice, or a run
whose split.json no longer gives the fingerprint it states (edited after
training; dataset.split_file.run_split_fingerprint) is left out of every mean
and named on stderr. Exit codes: 0 done, 2 no finished run or a bad
--out / --latex.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset.protocols import owdfa40_protocol  # noqa: E402
from dataset.split import DatasetError  # noqa: E402
from dataset.split_file import run_split_fingerprint  # noqa: E402
from inference.output_paths import check_file  # noqa: E402
from inference.predictions import OutputError  # noqa: E402
from utils.disk import write_atomic  # noqa: E402
from inference.results import group_runs, latex, notes, per_run_rows, read_runs, summary_rows  # noqa: E402
from utils.text import markdown_table  # noqa: E402

CAPTION = ("Last-epoch test results, mean ± sample std over seeds (accuracies, NMI and ARI in %; "
           "est. total K: known + estimated novel classes).")


def with_checked_split(run, skipped: list[str]) -> bool:
    """Set the run's split fingerprint, recomputed from its split.json; False (with the reason
    added to ``skipped``) when that file cannot be read or was edited after training."""
    try:
        run.split_fingerprint = run_split_fingerprint(run.path)
    except DatasetError as err:
        skipped.append(f"{run.path}: {err}; its results are left out of every mean")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (exp/<experiment>/<timestamp>)")
    parser.add_argument("--out", default=None, metavar="FILE.md", help="also write the Markdown to this .md file")
    parser.add_argument("--latex", default=None, metavar="FILE.tex",
                        help="write LaTeX (booktabs) tables to this .tex file")
    args = parser.parse_args(argv)
    try:
        for flag, path, suffix, what in (("--out", args.out, ".md", "the tables as Markdown"),
                                         ("--latex", args.latex, ".tex", "the tables as LaTeX")):
            if path:
                check_file(path, flag, suffix, what)
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs, skipped = read_runs(args.run_dirs)
    runs = [run for run in runs if with_checked_split(run, skipped)]
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    if not runs:
        print(f"error: none of the {len(args.run_dirs)} folders is a finished run with an intact split.json (each "
              f"is named above); pass run directories (exp/<experiment>/<timestamp>) with config.json and a "
              f"complete metrics.jsonl", file=sys.stderr)
        return 2
    groups = group_runs(runs, owdfa40_protocol)
    summary, per_run = summary_rows(groups), per_run_rows(groups)
    parts = [markdown_table(*summary), "Per run:", markdown_table(*per_run)]
    if group_notes := notes(groups):
        parts.append("Note: " + "; ".join(group_notes))
    text = "\n\n".join(parts) + "\n"
    print(text, end="")
    header, rows = per_run
    tex = [latex(*summary, CAPTION), latex(header[:-1], [row[:-1] for row in rows], "Per-seed results.")]
    try:
        for path, content in ((args.out, CAPTION + "\n\n" + text), (args.latex, "\n\n".join(tex) + "\n")):
            if path:
                write_atomic(path, content)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
