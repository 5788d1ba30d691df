"""The modules of ``statetype`` form layers: no import cycle, and no import inside a function to dodge one.

Imports are read with ``ast``. Imports under ``if TYPE_CHECKING:`` are for
type checkers only and are left out. A function may import another module of
the package only when that module needs an optional extra (WTForms, alembic,
pydantic, sqladmin, hypothesis...): importing it lazily is what keeps the
extra optional. docs/contributing.md lists the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "statetype"

# Modules whose import needs an optional extra, or which only tools use (the CLI's commands).
LAZY_ALLOWED = {"forms", "_wtfields", "alembic", "pydantic", "schema", "admin", "testing", "diagram", "demo"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def _resolve(current: str, is_package: bool, level: int, module: str | None) -> str | None:
    if level == 0:
        if module is None or not module.startswith("statetype"):
            return None
        rest = module[len("statetype") :].lstrip(".")
        return rest or "__init__"
    base = current.split(".") if current != "__init__" else []
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    target = ".".join([*base, *(module.split(".") if module else [])])
    return target or "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str | None = None) -> tuple[set[str], list[tuple[int, str]]]:
    """(modules imported at module level, [(line, module) imported inside functions])."""
    name = name or _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    lazy: list[tuple[int, str]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        found: list[str] = []
        if isinstance(node, ast.ImportFrom):
            resolved = _resolve(name, is_package, node.level, node.module)
            if resolved is None:
                return found
            if node.module is None or resolved == "__init__":
                # ``from . import execution``: each alias is a module
                prefix = "" if resolved == "__init__" else resolved + "."
                found.extend(prefix + alias.name for alias in node.names)
            else:
                found.append(resolved)
        else:
            for alias in node.names:
                resolved = _resolve(name, is_package, 0, alias.name)
                if resolved is not None:
                    found.append(resolved)
        return found

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit_one(sub, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(child: ast.AST, in_function: bool) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            for target in targets(child):
                if in_function:
                    lazy.append((child.lineno, target))
                else:
                    top.add(target)
            return
        visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, lazy


def _graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str]]]]:
    graph: dict[str, set[str]] = {}
    lazy: dict[str, list[tuple[int, str]]] = {}
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for path in sorted(PACKAGE.rglob("*.py")):
        top, inner = _imports(path)
        name = _module_name(path)
        # ``from .x import y`` where y is a submodule of package x counts as x.y when it exists.
        graph[name] = {t for t in top if t in modules and t != name}
        lazy[name] = [(line, t) for line, t in inner if t in modules]
    return graph, lazy


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if target == "__init__" or (node.startswith(target + ".") and target in graph):
                continue  # a submodule importing its own package runs that package first, by Python's rules
            found = walk(target)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        found = walk(node)
        if found:
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph, _ = _graph()
    assert "execution" in graph and "transitions" in graph["execution"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_function_imports_a_module_of_the_package_except_optional_extras() -> None:
    _, lazy = _graph()
    offending = [
        f"{module}.py:{line} imports {target}"
        for module, found in lazy.items()
        for line, target in found
        if target.split(".")[0] not in LAZY_ALLOWED and not module.startswith(("testing", "admin"))
    ]
    assert offending == []


def test_the_checker_finds_a_cycle_and_a_lazy_import(tmp_path: Path) -> None:
    """The checks above can fail: a made-up cycle and a made-up lazy import are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .states import StateType\n"
        "if TYPE_CHECKING:\n    from .execution import apply\n"
        "def f():\n    from . import bulk\n"
    )
    top, inner = _imports(source, name="x")
    assert top == {"states"} and inner == [(6, "bulk")]
