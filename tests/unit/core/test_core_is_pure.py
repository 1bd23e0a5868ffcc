"""The core and the OSC package do no I/O and read no clock: no module of theirs imports one that
could. Every module found in those folders is checked, not a hand-kept list; so are the client's
protocol and clock and the shells' pure parts. The client reuses `osc`, never the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tcposcrouter

PACKAGE = Path(tcposcrouter.__file__).parent
PURE = sorted(
    [
        *(PACKAGE / "core").glob("*.py"),
        *(PACKAGE / "osc").glob("*.py"),
        PACKAGE / "errors.py",
        PACKAGE / "limits.py",
        # The client's protocol and clock, and the parts of the shells marked pure in
        # docs/architecture.md, are pure too.
        PACKAGE / "client" / "protocol.py",
        PACKAGE / "client" / "clock.py",
        PACKAGE / "server" / "wrong_port.py",
        *(
            PACKAGE / "server" / "http" / f"{name}.py"
            for name in ("dashboard", "head_check", "waiting", "frame_guard", "page_login")
        ),
        PACKAGE / "bridge" / "retime.py",
    ]
)
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "threading", "uvloop", "subprocess", "ssl"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
            # A relative import must stay inside the pure packages: not `..server`, not `..cli`.
            names.add("tcposcrouter." + node.module.split(".")[0])
    return names


def test_the_pure_packages_are_found() -> None:
    names = {path.stem for path in PURE}
    assert {"hub", "outbox", "session", "directory", "framing", "validate", "messages"} <= names


@pytest.mark.parametrize("path", PURE, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_pure_module_imports_no_io(path: Path) -> None:
    imported = imported_modules(path)
    assert not imported & FORBIDDEN
    assert not imported & {"tcposcrouter.server", "tcposcrouter.cli", "tcposcrouter.client"}


@pytest.mark.parametrize(
    "path",
    sorted([*(PACKAGE / "client").glob("*.py"), *(PACKAGE / "bridge").glob("*.py")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_the_client_and_the_bridge_never_use_the_server(path: Path) -> None:
    assert not imported_modules(path) & {"tcposcrouter.server", "tcposcrouter.cli"}


def test_the_check_would_notice_an_io_import() -> None:
    assert {"asyncio", "socket"} <= imported_modules(PACKAGE / "server" / "tcp.py")
    assert "tcposcrouter.server" in imported_modules(PACKAGE / "cli" / "router.py")
