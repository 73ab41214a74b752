"""The packages import only downwards: utils <- losses, discovery <- models, utils <- dataset,
and trainer and inference (a trained run -> answers and artefacts) on top, side by side:
inference never imports trainer; no two files import each other, directly or around a loop.
An import back up a layer (e.g. models importing trainer) or a circle is what this catches,
function-level imports included; and the trainer's source names no method's loss terms."""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    "utils": {"utils"},
    "losses": {"losses", "utils"},
    "discovery": {"discovery", "utils"},
    "dataset": {"dataset", "utils"},
    "models": {"models", "losses", "discovery", "utils"},
    "trainer": {"trainer", "models", "losses", "discovery", "dataset", "utils"},
    "inference": {"inference", "models", "losses", "discovery", "dataset", "utils"},
}
SKIPPED = {".git", ".venv", "exp", "data", "__pycache__"}


def imported_modules(path: Path) -> set[str]:
    """Dotted names of every absolute import in ``path`` (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)} & set(ALLOWED)


def repository_modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the repository (a package's ``__init__`` as the package)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if SKIPPED & set(parts):
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts:
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: {m for m in imported_modules(path) if m in modules and m != name} for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_package_imports_a_layer_above_it():
    upward = [f"{path.relative_to(REPO)} imports {sorted(imported_packages(path) - allowed)}"
              for package, allowed in ALLOWED.items() for path in sorted((REPO / package).glob("*.py"))
              if imported_packages(path) - allowed]
    assert not upward, "\n".join(upward)


def test_no_import_circle_between_any_files():
    found = circles(import_graph(repository_modules()))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from trainer.trainer import Trainer\n    import losses.ccr\n")
    assert imported_packages(module) == {"trainer", "losses"}


def test_the_check_sees_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import g\n")
    (tmp_path / "pkg" / "b.py").write_text("def g():\n    from pkg import c\n")
    (tmp_path / "pkg" / "c.py").write_text("def h():\n    import pkg.a\n")
    (tmp_path / "pkg" / "d.py").write_text("import pkg.a\n")
    assert circles(import_graph(repository_modules(tmp_path))) == [["pkg.a", "pkg.b", "pkg.c"]]


def string_constants(path: Path) -> set[str]:
    """Every string literal in ``path`` (f-string parts included)."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_trainer_names_no_method_and_none_of_their_terms():
    """The trainer logs whatever a method returns: no loss term, config key or name of any
    registered method appears in its source (each method's terms come from a real step)."""
    import torch

    from models.method import METHODS, create_method
    from utils.config import SECTIONS, load_config

    named = set()
    for name in METHODS:
        method = create_method(load_config(None, [f"method={name}", "backbone=resnet18", "pretrained=false",
                                                  "epochs=2", "cal_pseudo_start=0" if name == "cal" else "seed=0"]),
                               2, 4)
        images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
        batch = {"weak": images, "strong": images, "label": torch.tensor([0, 1, -1, -1])}
        named |= set(method.training_step(batch, 1)) - {"loss"}
        named |= set(SECTIONS[name].keys) | {name, method.NAME}
    named |= {"gamma_novel", "k_novel_estimate", "prototypes.weight"}
    found = {f"{path.name}: {text}" for path in sorted((REPO / "trainer").glob("*.py"))
             for text in string_constants(path) for term in named if re.search(rf"\b{re.escape(term)}\b", text)}
    assert not found, "the trainer names a method's terms:\n" + "\n".join(sorted(found))


def test_utils_imports_no_model_or_method_code_even_by_name():
    """utils/ holds what any project could use: no import of models/, discovery/ or losses/, static
    (the layer check above) or by name through importlib."""
    dynamic = [path.name for path in sorted((REPO / "utils").glob("*.py")) if "import_module" in path.read_text()]
    assert not dynamic, f"utils/ modules importing by name: {dynamic}"
