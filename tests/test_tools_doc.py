"""docs/tools.md lists every flag of every command-line tool, read from the tools' own parsers
(argparse, and train.py's hand-made one), so the table cannot go stale; every argument has help
text and one placeholder per kind of value, and a module's usage line names it as it is run."""
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


# The placeholder of each kind of path (docs/tools.md says the same): a folder, run directories,
# the model source, what predict.py reads, a saved log, a file by its format, the class table, the
# prototype names.
PATH_PLACEHOLDER = re.compile(r"DIR|RUN_DIR|CKPT|INPUT|LOG|FILE\.[a-z]+|CLASSES\.csv|NAMES\.csv")


def documented() -> dict[str, set[str]]:
    """tool -> the flags its rows of docs/tools.md name (the first word of the flag cell)."""
    return {tool: set(flags) for tool, flags in documented_placeholders().items()}


def documented_placeholders() -> dict[str, dict[str, str | None]]:
    """tool -> flag -> the placeholder its row of docs/tools.md shows after it (None: none)."""
    rows = {}
    for line in (REPO / "docs" / "tools.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("--"):
            flag, *placeholder = cells[1].split()
            rows.setdefault(cells[0], {})[flag] = placeholder[0] if placeholder else None
    return rows


class Parsed(Exception):
    pass


def flags_of(tool: str, monkeypatch) -> set[str]:
    """The --flags of ``tool``'s argparse parser, caught where the tool parses its arguments."""
    return {option for action in parser_of(tool, monkeypatch)._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"}


def parser_of(tool: str, monkeypatch) -> argparse.ArgumentParser:
    """``tool``'s argparse parser, caught where the tool parses its arguments."""
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
    return seen["parser"]


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


def placeholder(action: argparse.Action) -> str | None:
    """What --help shows for the action's value (None for a switch or a choice)."""
    if action.nargs == 0 or action.choices:
        return None
    return action.metavar or (action.dest.upper() if action.option_strings else action.dest)


def takes_a_path(action: argparse.Action) -> bool:
    words = (action.help or "").lower()
    return placeholder(action) is not None and (
        action.dest in ("out", "ckpt", "names", "report", "save_predictions", "latex", "readme", "log")
        or action.dest.endswith(("_root", "_dir", "_dirs", "_file", "_path"))
        or any(word in words for word in ("file", "folder", "director")))


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_flag_of_the_tool_is_in_the_table(name, monkeypatch):
    flags = flags_of(TOOLS[name], monkeypatch)
    missing = flags - documented().get(name, set())
    assert not missing, f"docs/tools.md lacks {name} {sorted(missing)}"
    stale = documented().get(name, set()) - flags
    assert not stale, f"docs/tools.md lists {name} {sorted(stale)}, which it does not have"


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_argument_has_help_and_a_path_its_kind_of_placeholder(name, monkeypatch):
    parser = parser_of(TOOLS[name], monkeypatch)
    assert [a.dest for a in arguments(parser) if not (a.help or "").strip()] == []
    paths = {a.dest: placeholder(a) for a in arguments(parser) if takes_a_path(a)}
    assert {dest: shown for dest, shown in paths.items() if not PATH_PLACEHOLDER.fullmatch(shown)} == {}
    rows = documented_placeholders().get(name, {})
    for action in arguments(parser):
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag in rows and (rows[flag] is not None or takes_a_path(action)):
            assert rows[flag] == placeholder(action), f"docs/tools.md shows {name} {flag} {rows[flag]}"


def test_one_placeholder_per_flag_across_tools(monkeypatch):
    """A flag other than --out (a file or a folder, by tool) shows the same placeholder in every tool."""
    shown = {}
    for name in sorted(TOOLS):
        for action in arguments(parser_of(TOOLS[name], monkeypatch)):
            for option in action.option_strings:
                if option.startswith("--") and option != "--out":
                    shown.setdefault(option, {}).setdefault(placeholder(action), []).append(name)
    assert {flag: kinds for flag, kinds in shown.items() if len(kinds) > 1} == {}


@pytest.mark.parametrize("name", sorted(t for t in TOOLS if t.startswith("python -m ")))
def test_a_module_usage_line_says_python_m(name, monkeypatch):
    assert parser_of(TOOLS[name], monkeypatch).format_usage().startswith(f"usage: {name} ")


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
