"""Imports point down only (docs/architecture.md): every import of the package's own modules is
counted, at the top of a module, under `TYPE_CHECKING` and inside functions alike.

    cli  >  bridge, cluster  >  server  >  client  >  core  >  osc  >  errors, limits

A module may import its own layer and the layers below; and the modules, all of them, import
one another without a cycle. The graph is read from the source files, not from a list kept by
hand, so a new module is checked the day it is written."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tcposcrouter

PACKAGE = Path(tcposcrouter.__file__).parent

# Rank of each layer: a module may import modules of its own rank or lower.
LAYERS = {
    "errors": 0,
    "limits": 0,
    "osc": 1,
    "core": 2,
    "client": 3,
    "server": 4,
    "bridge": 5,
    "cluster": 5,
    "cli": 6,
}
# `python -m tcposcrouter` runs the command line: it sits on top.
TOP = 7
# The package's __init__ holds only the version, which every layer may read.
VERSION = 0


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module of the package that `name` imports, wherever the import stands."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def rank(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return VERSION
    if parts[1] == "__main__":
        return TOP
    return LAYERS[parts[1]]


def test_the_package_itself_holds_only_the_version() -> None:
    assert GRAPH["tcposcrouter"] == set()


def test_every_module_is_in_a_layer() -> None:
    assert {name.split(".")[1] for name in MODULES if "." in name} - {"__main__"} == set(LAYERS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    upward = sorted(other for other in GRAPH[name] if rank(other) > rank(name))
    assert upward == [], f"{name} imports a higher layer"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_checks_would_notice() -> None:
    # A cycle of three, and an import hidden under TYPE_CHECKING, are both seen.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert "tcposcrouter.server.running" in GRAPH["tcposcrouter.server.connection"]
    assert (
        "tcposcrouter.server.http.port" in GRAPH["tcposcrouter.server.app"]
    )  # under TYPE_CHECKING
    assert "tcposcrouter.cluster.node" in GRAPH["tcposcrouter.cli.router"]  # inside a function
    assert rank("tcposcrouter.cli.router") > rank("tcposcrouter.cluster.node")
