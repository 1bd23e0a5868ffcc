"""Parts stay small: no module in src/ over 400 lines, no class over 250 (docs/architecture.md).
A part that grows past them has taken a second job; it gets a module of its own instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tcposcrouter

PACKAGE = Path(tcposcrouter.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def class_lengths(path: Path) -> dict[str, int]:
    tree = ast.parse(path.read_text())
    return {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_modules_and_classes_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES
    assert {name: n for name, n in class_lengths(path).items() if n > MAX_CLASS_LINES} == {}


def test_the_hub_is_a_facade() -> None:
    from tcposcrouter.core import hub as module
    from tcposcrouter.core.hub import Hub

    assert len(Path(module.__file__).read_text().splitlines()) <= 250

    public = {name for name in vars(Hub) if not name.startswith("_")}
    hub = Hub()
    public |= {name for name in vars(hub) if not name.startswith("_")}
    assert len(public) <= 15, sorted(public)
