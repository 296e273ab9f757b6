"""src/ has no import cycle, between files or between packages (read from the AST: every import,
lazy ones inside functions included; ``if TYPE_CHECKING:`` blocks excluded), and the layers stay
in their order: the runtime below the selectors, the selectors below the engine."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "bgresample"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / PKG).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the bgresample modules it imports. ``from P import M`` of a submodule ``M``
    depends on ``P.M``, not on the package ``P``'s ``__init__``."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            else:
                continue
            for target in targets:
                if target == PKG or target.startswith(PKG + "."):
                    dep = owner(target)
                    if dep is not None and dep != mod:
                        graph[mod].add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def _package(mod: str) -> str:
    """``bgresample.engine.finetune`` -> ``bgresample.engine``; top-level modules stand alone."""
    return ".".join(mod.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        for dep in deps:
            a, b = _package(mod), _package(dep)
            if a != b:
                out.setdefault(a, set()).add(b)
    return out


def test_no_import_cycle_between_files():
    assert cycles(import_graph()) == []


def test_no_import_cycle_between_packages():
    graph = import_graph()
    found = cycles(package_graph(graph))
    detail = [
        f"{m} -> {d}"
        for comp in found
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if _package(m) in comp and _package(d) in comp and _package(m) != _package(d)
    ]
    assert found == [], detail


def test_layers_import_only_downwards():
    """runtime < selectors < engine < commands/cli; data and models never reach up to the
    config or the engine."""
    below = {
        "bgresample.runtime": {"bgresample.selectors", "bgresample.engine", "bgresample.config"},
        "bgresample.selectors": {"bgresample.engine", "bgresample.commands", "bgresample.cli"},
        "bgresample.data": {"bgresample.config", "bgresample.engine", "bgresample.selectors"},
        "bgresample.models": {"bgresample.config", "bgresample.engine", "bgresample.selectors"},
    }
    packages = package_graph(import_graph())
    wrong = {p: sorted(packages.get(p, set()) & banned) for p, banned in below.items()}
    assert not any(wrong.values()), wrong


def test_the_graph_sees_imports():
    """The reader finds lazy and relative imports (a guard against a vacuous pass)."""
    graph = import_graph()
    assert "bgresample.runtime.accel" in graph["bgresample.selectors.base"]
    assert "bgresample.models" in graph["bgresample.config"]  # lazy, inside validate()
