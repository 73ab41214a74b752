"""Compare methods on identical splits: one table, methods x protocols, mean ± std over seeds.

    python scripts/compare.py exp/owdfa40_p1/*/ exp/cpl_owdfa40_p1/*/ exp/simgcd_owdfa40_p1/*/ [--out table.md]

Each row is a task (protocol), K setting and method, with the last epoch's All /
Known / Novel ACC, NMI, ARI and discovery as mean ± sample std over the runs (seeds).
Runs of one method with different result-changing settings are separate rows,
labelled by the keys that differ (``cal [cal_gamma=0.9]``). The
runs of one task must share one split (the fingerprint of their split.json;
train them with the same ``split_file=``): otherwise it refuses, naming the runs
of each split. Exit codes: 0 done, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataset.split import DatasetError  # noqa: E402
from dataset.split_file import run_split_fingerprint  # noqa: E402
from inference.output_paths import check_file  # noqa: E402
from inference.predictions import OutputError  # noqa: E402
from utils.disk import write_atomic  # noqa: E402
from inference.results import ResultsError, comparison_rows, group_runs, read_run, split_conflicts  # noqa: E402
from utils.text import markdown_table  # noqa: E402

CAPTION = "Last-epoch test results, mean ± sample std over seeds (accuracies, NMI and ARI in %), on one split per task."


def fingerprint(run_path: Path) -> str:
    """The fingerprint of the run's split.json, recomputed from its images."""
    found = run_split_fingerprint(run_path)
    if found is None:
        raise ResultsError(f"{run_path} has no split.json, so its split cannot be checked; "
                           f"compare runs written by train.py")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (exp/<experiment>/<timestamp>)")
    parser.add_argument("--out", default=None, metavar="FILE.md", help="also write the Markdown table to this .md file")
    args = parser.parse_args(argv)
    try:
        if args.out:
            check_file(args.out, "--out", ".md", "the table as Markdown")
        runs = [read_run(path) for path in args.run_dirs]
        fingerprints = {r.path: fingerprint(r.path) for r in runs}
    except (ResultsError, DatasetError, OutputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    groups = group_runs(runs)
    if conflicts := split_conflicts(groups, fingerprints):
        print("error: refusing to compare runs trained on different splits; " + " | ".join(conflicts)
              + "; retrain them with one split_file=RUN/split.json", file=sys.stderr)
        return 2
    text = markdown_table(*comparison_rows(groups)) + "\n"
    print(text, end="")
    try:
        if args.out:
            write_atomic(args.out, CAPTION + "\n\n" + text)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
