"""One module, one job, named for it (docs/architecture.md): every module says its job in its
opening docstring, and every module with logic has a unit test file of its own beside its
package's tests, so that a new maintainer finds a part and its checks by the same name. Parts
are split by job, not by size: no line count is enforced. (The layers are tests/unit/
test_layers.py's; every module's line in its package's map is test_docs.py's.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tcposcrouter

PACKAGE = Path(tcposcrouter.__file__).parent
UNIT_TESTS = Path(__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))

# Modules whose logic is moving bytes between real sockets, processes or Redis: their tests run
# them for real, where the end-to-end tests live, and each such file names the modules it
# drives (a test below holds it to that).
TESTED_END_TO_END = {
    "bridge/bridge.py": "tests/integration/test_bridge.py",
    "cli/client.py": "tests/integration/test_client_cli.py",
    "cli/router.py": "tests/integration/test_router_process.py",
    "client/aio.py": "tests/integration/test_client.py",
    "client/blocking.py": "tests/integration/test_client.py",
    "cluster/link.py": "tests/integration/test_cluster_redis_faults.py",
    "cluster/node.py": "tests/integration/test_cluster.py",
    "cluster/presence_sync.py": "tests/integration/test_cluster.py",
    "cluster/publisher.py": "tests/integration/test_cluster.py",
    "cluster/registers.py": "tests/integration/test_cluster.py",
    "cluster/startup.py": "tests/integration/test_cluster_faults.py",
    "cluster/traffic.py": "tests/integration/test_cluster.py",
    "cluster/workers.py": "tests/integration/test_workers.py",
    "cluster/writer.py": "tests/integration/test_cluster.py",
    "server/connection.py": "tests/integration/test_server_in_process.py",
    "server/http/door.py": "tests/integration/test_http_door.py",
    "server/http/live.py": "tests/integration/test_web_doors.py",
    "server/http/port.py": "tests/integration/test_web_doors.py",
    "server/http/websocket.py": "tests/integration/test_websocket.py",
    "server/listeners.py": "tests/integration/test_router_process.py",
    "server/tcp.py": "tests/integration/test_server_in_process.py",
}
ROOT = UNIT_TESTS.parents[1]


def _has_logic(path: Path) -> bool:
    """A function or a method with a body beyond a docstring and `...` (a Protocol's)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = [
                statement
                for statement in node.body
                if not (
                    isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                )
            ]
            if body:
                return True
    return False


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_says_its_job(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{_name(path)} has no docstring saying what it is for"


@pytest.mark.parametrize("path", [p for p in MODULES if _has_logic(p)], ids=_name)
def test_every_module_with_logic_has_its_own_tests(path: Path) -> None:
    name = _name(path)
    if name in TESTED_END_TO_END:
        where = ROOT / TESTED_END_TO_END[name]
        assert name in where.read_text(), f"{where.name} does not say that it drives {name}"
        return
    package = path.parent.relative_to(PACKAGE)
    # Test files are imported by their base name, so where `test_<module>.py` is another
    # folder's already, the package's name goes in front: test_<package>_<module>.py.
    names = [f"test_{path.stem}.py", f"test_{package.name}_{path.stem}.py"]
    found = [UNIT_TESTS / package / n for n in names if (UNIT_TESTS / package / n).is_file()]
    assert found, f"{name}: no tests/unit/{package}/{names[0]}"
