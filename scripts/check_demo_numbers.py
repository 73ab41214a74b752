"""Check that the demo prints the numbers README.md shows, so the two cannot drift apart.

    bash scripts/demo.sh | tee demo.log && python scripts/check_demo_numbers.py demo.log
    python scripts/check_demo_numbers.py --run        # runs bash scripts/demo.sh itself (its time: docs/performance.md)

Compares the ACC / NMI / ARI / conf rows of the last metrics table in the demo's
output (test.py's table, which ends the demo) and its discovery line with the
fenced block that follows the line containing "prints" in README.md. Exit status: 0 equal, 1 different
(the rows that differ are listed, and the printed table is shown ready to paste
into README.md), 2 a table missing or the demo failing.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROWS = ("ACC", "NMI", "ARI", "conf")
ROW = re.compile(r"^\s*(ACC|NMI|ARI|conf)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
DISCOVERY = re.compile(r"^\s*(discovery: .*?)\s*$", re.M)
HEADER = "  ".join(f"{cell:>6}" for cell in ("", "all", "known", "novel"))


class TableError(ValueError):
    """No complete metrics table where one was expected."""


def tables(text: str) -> list[dict[str, tuple[str, str, str]]]:
    """Every complete table (the four rows in order, consecutive lines) in ``text``, in order."""
    found, current = [], {}
    for line in re.split(r"[\r\n]+", text):
        match = ROW.match(line)
        name = match.group(1) if match else None
        if name != ROWS[len(current)]:
            current = {}
            if name != ROWS[0]:
                continue
        current[name] = match.groups()[1:]
        if len(current) == len(ROWS):
            found.append(current)
            current = {}
    return found


def printed_table(log: str) -> dict[str, tuple[str, str, str]]:
    """The last table the demo printed (test.py's evaluation of the last checkpoint)."""
    found = tables(log)
    if not found:
        raise TableError("no metrics table (rows ACC, NMI, ARI, conf) in the demo's output; pass the stdout of "
                         "`bash scripts/demo.sh` (or use --run)")
    return found[-1]


def discovery(text: str) -> str | None:
    """The last discovery line in ``text`` (utils/tables.discovery_line), None without one."""
    found = DISCOVERY.findall(text)
    return found[-1] if found else None


def readme_block(readme: str) -> str:
    """The first fenced block with a metrics table that follows a line containing "prints"."""
    lines = readme.splitlines()
    for number, line in enumerate(lines):
        if "prints" not in line:
            continue
        start = next((i for i in range(number + 1, len(lines)) if lines[i].strip()), len(lines))
        if start < len(lines) and lines[start].startswith("```"):
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("```")), len(lines))
            block = "\n".join(lines[start + 1:end])
            if tables(block):
                return block
    raise TableError('README.md has no fenced block with rows ACC, NMI, ARI, conf right after a line containing '
                     '"prints" (Quick start)')


def differences(readme: dict, printed: dict) -> list[str]:
    """One line per row whose values differ."""
    return [f"  {name:<5} README {'  '.join(readme[name]):<20} demo {'  '.join(printed[name])}"
            for name in ROWS if readme[name] != printed[name]]


def format_block(table: dict) -> str:
    """The table as the demo prints it (trainer.trainer.format_table's layout)."""
    return "\n".join([HEADER] + ["  ".join(f"{cell:>6}" for cell in (name, *table[name])) for name in ROWS])


def run_demo() -> str:
    """Run the demo, echoing its output, and return its stdout."""
    process = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() != 0:
        raise TableError(f"bash scripts/demo.sh failed with exit status {process.returncode}")
    return "".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", metavar="LOG", help="the demo's stdout saved to a file (- for stdin)")
    parser.add_argument("--run", action="store_true", help="run bash scripts/demo.sh and check its output")
    parser.add_argument("--readme", default=str(REPO / "README.md"), metavar="FILE.md",
                        help="the README to compare with")
    args = parser.parse_args(argv)
    if bool(args.log) == args.run:
        parser.error("pass the demo's log file or --run (one of them)")
    try:
        if args.run:
            log = run_demo()
        elif args.log == "-":
            log = sys.stdin.read()
        else:
            log = Path(args.log).read_text(errors="replace")
        printed = printed_table(log)
        block = readme_block(Path(args.readme).read_text())
    except (TableError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    readme = tables(block)[0]
    diff = differences(readme, printed)
    if discovery(block) != discovery(log):
        diff.append(f"  README {discovery(block)}\n  demo   {discovery(log)}")
    if diff:
        print(f"{args.readme}'s demo table and the demo's printed table differ:\n" + "\n".join(diff)
              + f"\nthe demo printed (paste into README.md's Quick start block if the change is intended):\n"
              + format_block(printed) + (f"\n{discovery(log)}" if discovery(log) else ""))
        return 1
    print(f"the demo printed the table {args.readme} shows:\n{format_block(printed)}\n{discovery(log)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
