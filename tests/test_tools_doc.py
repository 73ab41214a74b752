"""docs/tools.md lists every flag of every command-line tool, read from the tools' own parsers
(argparse, and train.py's hand-made one), so the table cannot go stale."""
import argparse
import re
import runpy
import sys
from pathlib import Path

import pytest
from conftest import REPO

import train

# the name a row of docs/tools.md gives a tool -> its script (.py) or module
TOOLS = {"test.py": "test.py", "predict.py": "predict.py", "export.py": "export.py", "estimate_k.py": "estimate_k.py",
         "scripts/aggregate.py": "scripts/aggregate.py", "scripts/compare.py": "scripts/compare.py",
         "scripts/check_demo_numbers.py": "scripts/check_demo_numbers.py",
         "scripts/plot_framework.py": "scripts/plot_framework.py", "python -m utils.report": "utils.report",
         "python -m dataset.get_data": "dataset.get_data", "python -m dataset.prepare": "dataset.prepare",
         "python -m dataset.synthetic": "dataset.synthetic"}


def documented() -> dict[str, set[str]]:
    """tool -> the flags its rows of docs/tools.md name (the first word of the flag cell)."""
    rows = {}
    for line in (REPO / "docs" / "tools.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("--"):
            rows.setdefault(cells[0], set()).add(cells[1].split()[0])
    return rows


class Parsed(Exception):
    pass


def flags_of(tool: str, monkeypatch) -> set[str]:
    """The --flags of ``tool``'s argparse parser, caught where the tool parses its arguments."""
    seen = {}

    def parse(self, *args, **kwargs):
        seen["parser"] = self
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    monkeypatch.setattr(sys, "argv", [tool])
    with pytest.raises(Parsed):
        if tool.endswith(".py"):
            runpy.run_path(str(REPO / tool), run_name="__main__")
        else:
            runpy.run_module(tool, run_name="__main__")
    return {option for action in seen["parser"]._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_flag_of_the_tool_is_in_the_table(name, monkeypatch):
    flags = flags_of(TOOLS[name], monkeypatch)
    missing = flags - documented().get(name, set())
    assert not missing, f"docs/tools.md lacks {name} {sorted(missing)}"
    stale = documented().get(name, set()) - flags
    assert not stale, f"docs/tools.md lists {name} {sorted(stale)}, which it does not have"


def test_train_py_flags_are_in_the_table():
    with pytest.raises(SystemExit) as caught:
        train.parse_args(["--no_such_flag"])
    flags = set(re.findall(r"--[a-z_]+", str(caught.value))) - {"--no_such_flag"}
    assert flags and flags == documented()["train.py"]


def test_every_tool_with_a_parser_is_listed():
    scripts = [p for pattern in ("*.py", "scripts/*.py", "dataset/*.py", "utils/*.py") for p in REPO.glob(pattern)]
    with_parser = {p.relative_to(REPO).as_posix() for p in scripts if "argparse.ArgumentParser(" in p.read_text()}
    listed = {t if t.endswith(".py") else t.replace(".", "/") + ".py" for t in TOOLS.values()}
    assert with_parser == listed


def test_the_readme_links_the_table():
    assert "docs/tools.md" in (REPO / "README.md").read_text()
