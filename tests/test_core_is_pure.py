"""The core (hub and below) does no I/O and reads no clock: no module that could is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tcposcrouter

CORE = ["errors", "framing", "osc", "auth", "routing", "hub"]
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "threading", "uvloop", "subprocess"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module: str) -> None:
    path = Path(tcposcrouter.__file__).parent / f"{module}.py"
    assert not imported_modules(path) & FORBIDDEN


def test_the_check_would_notice_an_io_import() -> None:
    server = Path(tcposcrouter.__file__).parent / "server.py"
    assert {"asyncio", "socket"} <= imported_modules(server)
