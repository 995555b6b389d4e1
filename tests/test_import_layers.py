"""The package's layers import downward only (STYLE.md, "The shape of the package"):
schema/data/text -> encoders -> train -> judges -> jobs -> evaluate / serve / align / demo -> cli.
An AST walk over src/referee, counting imports anywhere in a file (also inside functions)."""

from __future__ import annotations

import ast
import functools
import graphlib
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
LOW = ("referee.data", "referee.encoders", "referee.train", "referee.schema", "referee.text")
HIGH = ("referee.judges", "referee.jobs", "referee.serve", "referee.align", "referee.cli", "referee.demo")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "referee").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@functools.cache
def _graph() -> dict[str, set[str]]:
    """module -> the referee modules it imports (a name resolves to its longest known module;
    a package's own __init__ is not counted as imported by its children)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        targets = {resolve(n) for n in names if n.startswith("referee")}
        graph[name] = {t for t in targets if t and t != name and not name.startswith(t + ".")}
    return graph


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith(LOW)))
def test_low_layers_import_nothing_above_them(module):
    upward = sorted(t for t in _graph()[module] if t.startswith(HIGH))
    assert not upward, f"{module} imports {upward}, a layer above it"


def test_no_import_cycles():
    graphlib.TopologicalSorter(_graph()).prepare()  # raises CycleError naming the cycle


def test_every_module_imports_in_topological_order():
    for module in graphlib.TopologicalSorter(_graph()).static_order():
        importlib.import_module(module)
