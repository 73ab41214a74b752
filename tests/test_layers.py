"""The packages import only downwards: utils <- losses <- models, utils <- dataset,
and trainer on top. An import back up a layer (e.g. models importing trainer)
is what this catches, function-level imports included."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    "utils": {"utils"},
    "losses": {"losses", "utils"},
    "dataset": {"dataset", "utils"},
    "models": {"models", "losses", "utils"},
    "trainer": {"trainer", "models", "losses", "dataset", "utils"},
}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


def test_no_package_imports_a_layer_above_it():
    upward = [f"{path.relative_to(REPO)} imports {sorted(imported_packages(path) - allowed)}"
              for package, allowed in ALLOWED.items() for path in sorted((REPO / package).glob("*.py"))
              if imported_packages(path) - allowed]
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from trainer.distributed import reduce_sum\n    import losses.ccr\n")
    assert imported_packages(module) == {"trainer", "losses"}
