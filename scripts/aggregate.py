"""Mean ± std tables over finished runs (seeds), in Markdown and LaTeX.

    python scripts/aggregate.py exp/owdfa40_p*/*/ [--out results.md] [--latex results.tex]
    SEEDS="2025 2026 2027" bash scripts/train.sh && python scripts/aggregate.py exp/owdfa40_p?/*/

Runs are grouped by task (OWDFA-40 protocol, or a custom class table with its
protocol or known set) and K setting; each group gives the last epoch's All /
Known / Novel ACC, NMI, ARI and estimated total K as mean ± sample std, the
paper's numbers where they exist, and a per-run table. Prints the Markdown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.results import (ResultsError, group_runs, latex, markdown, notes, per_run_rows,  # noqa: E402
                           read_run, summary_rows)

CAPTION = ("Last-epoch test results, mean ± sample std over seeds (accuracies, NMI and ARI in %; "
           "est. total K: known + estimated novel classes).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="run directories (exp/<experiment>/<timestamp>)")
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    parser.add_argument("--latex", default=None, help="write LaTeX (booktabs) tables here")
    args = parser.parse_args(argv)
    try:
        groups = group_runs([read_run(path) for path in args.run_dirs])
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary, per_run = summary_rows(groups), per_run_rows(groups)
    parts = [markdown(*summary), "Per run:", markdown(*per_run)]
    if group_notes := notes(groups):
        parts.append("Note: " + "; ".join(group_notes))
    text = "\n\n".join(parts) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(CAPTION + "\n\n" + text)
    if args.latex:
        header, rows = per_run
        tex = [latex(*summary, CAPTION), latex(header[:-1], [row[:-1] for row in rows], "Per-seed results.")]
        Path(args.latex).write_text("\n\n".join(tex) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
