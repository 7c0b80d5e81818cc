"""The import graph of ``dreambench``, read from the source (AST), has no cycles where it must not.

An edge ``a -> b`` is any import of ``b`` that runs in ``a``: at the top of the file or inside a function
body (a lazy import still makes ``a`` depend on ``b``). Imports under ``if TYPE_CHECKING:`` never run and
are left out. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.

The *top-level* graph keeps only the imports that run when a module is first imported (module body, class
bodies, ``if``/``try`` blocks; not function bodies): a cycle there is a real circular-import hazard, so
``dreambench`` holds none. The whole graph holds none either: a function-body import that closes a circle
would run, but it hides a dependency the file's header does not show (issue 21.5).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dreambench"

#: Packages that must hold no import cycle among their own modules.
ACYCLIC = ("dreambench.methods", "dreambench.models")
#: Lower layers, and the higher layers none of their modules may import.
LOWER = ("dreambench.methods", "dreambench.models", "dreambench.metrics", "dreambench.registry")
HIGHER = ("dreambench.engine", "dreambench.commands", "dreambench.cli", "dreambench.tables", "dreambench.report",
          "dreambench.study")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool, modules: dict) -> set[str]:
    """The dreambench modules one import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = module if is_pkg else module.rpartition(".")[0]
        for _ in range(max(node.level - 1, 0)):
            base = base.rpartition(".")[0]
        if node.level:
            base = ".".join(p for p in (base, node.module) if p)
        else:
            base = node.module or ""
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        names = subs + ([base] if len(subs) < len(node.names) else [])
    out = set()
    for name in names:
        while name and name not in modules:  # ``import a.b.c`` of a name inside a module
            name = name.rpartition(".")[0]
        if name.startswith("dreambench") and name != module:
            out.add(name)
    return out


def _runtime_imports(tree: ast.AST):
    """Every import statement outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for block in node.orelse for n in _runtime_imports(ast.Module([block], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _top_level_imports(tree: ast.AST):
    """The import statements that run when the module is imported: :func:`_runtime_imports` less those
    inside function bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for block in node.orelse for n in _top_level_imports(ast.Module([block], [])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _top_level_imports(node)


def import_graph(top_level_only: bool = False) -> dict[str, set[str]]:
    """Module -> the dreambench modules it imports (``top_level_only``: at import time only)."""
    modules = _modules()
    imports = _top_level_imports if top_level_only else _runtime_imports
    graph = {}
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(_targets(n, name, is_pkg, modules) for n in imports(tree)))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_import_cycle_within(package):
    graph = import_graph()
    sub = {m: {t for t in ts if _within(t, package)} for m, ts in graph.items() if _within(m, package)}
    assert cycles(sub) == []


def test_the_registry_modules_import_no_cycle():
    graph = import_graph()
    assert not [c for c in cycles(graph) if any(_within(m, p) for m in c for p in (*ACYCLIC, "dreambench.registry"))]


def test_no_import_cycle_at_top_level():
    """Anywhere in ``dreambench``: a cycle of module-level imports fails or half-initialises a module
    depending on which one is imported first. Break one edge by importing inside the function that needs it
    (with a ``# lazy:`` comment naming the module that imports this one), or better, move what both need into
    a third module (:func:`test_no_import_cycle_anywhere`)."""
    assert cycles(import_graph(top_level_only=True)) == []


def test_no_import_cycle_anywhere():
    """Not even through an import inside a function: when two modules need each other, the part both need
    belongs in a third module they both import."""
    assert cycles(import_graph()) == []


def test_lower_layers_never_import_higher_ones():
    graph = import_graph()
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if any(_within(m, low) for low in LOWER)
                 for t in ts if any(_within(t, high) for high in HIGHER))
    assert bad == []


def test_models_import_no_method_and_no_metric():
    """Model profiles and builders are the bottom of the model stack: methods and metrics build on them,
    never the other way (the checks that load all of them, ``dreambench.preflight``, sit above both)."""
    graph = import_graph()
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if _within(m, "dreambench.models")
                 for t in ts if _within(t, "dreambench.methods") or _within(t, "dreambench.metrics"))
    assert bad == []


def test_the_graph_sees_known_edges():
    """The reader itself: a top-level, a lazy and a TYPE_CHECKING-only import."""
    graph = import_graph()
    assert "dreambench.methods.interface" in graph["dreambench.methods.registry"]
    assert "dreambench.models.sd" in graph["dreambench.models.random_digest"]  # inside a function
    assert "dreambench.methods.training" not in graph["dreambench.methods.interface"]  # TYPE_CHECKING only
    top = import_graph(top_level_only=True)
    assert "dreambench.methods.interface" in top["dreambench.methods.registry"]
    assert "dreambench.models.sd" not in top["dreambench.models.random_digest"]  # inside a function
    assert "dreambench.engine.paper" in top["dreambench.engine.labels"]
    assert "dreambench.engine.labels" not in graph["dreambench.engine.paper"]


def test_the_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
