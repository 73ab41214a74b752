"""Module docstrings say what a module does and why in at most 15 lines; the
measurements and alternatives behind a choice live in docs/, with the
command that reproduces them."""
import ast
from pathlib import Path

from test_layers import REPO, repository_modules

MAX_LINES = 15


def docstring_lines(path: Path) -> int:
    docstring = ast.get_docstring(ast.parse(path.read_text(), str(path)))
    return len(docstring.splitlines()) if docstring else 0


def test_no_module_docstring_is_longer_than_15_lines():
    long = [f"{path.relative_to(REPO)}: {lines} lines" for path in repository_modules().values()
            if (lines := docstring_lines(path)) > MAX_LINES]
    assert not long, f"module docstrings over {MAX_LINES} lines (move the detail to docs/):\n" + "\n".join(long)


def test_the_count_is_the_docstrings_own_lines(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""One.\n\nThree.\n    four\n"""\nx = """not a docstring\n\n\n"""\n')
    assert docstring_lines(module) == 4
    module.write_text("x = 1\n")
    assert docstring_lines(module) == 0
