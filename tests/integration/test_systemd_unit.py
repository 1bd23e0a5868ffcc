"""The systemd unit in examples/systemd/: `systemd-analyze verify` accepts it, and its command
line is one the router takes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from support.peers import require_program
from tcposcrouter.cli.router import parse_args

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "examples" / "systemd" / "tcposcrouter.service"
EXAMPLE_CONFIG = ROOT / "examples" / "tcposcrouter.toml"


def exec_start() -> list[str]:
    (line,) = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze")
    # The unit names where the guide installs the router; here it is this venv's.
    installed = shutil.which("tcposcrouter", path=str(Path(sys.executable).parent))
    assert installed is not None, "tcposcrouter is not installed in this venv"
    unit = tmp_path / "tcposcrouter.service"
    unit.write_text(UNIT.read_text().replace(exec_start()[0], installed))
    verify = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    assert "tcposcrouter.service" not in verify.stderr, verify.stderr  # no warning about it
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # systemd's own rating of the sandbox: "OK" is its best band but one (below 2.0).
    assert "Overall exposure level for tcposcrouter.service" in security.stdout
    level = float(
        security.stdout.rsplit("exposure level for tcposcrouter.service:", 1)[1].split()[0]
    )
    assert level < 2.0, security.stdout


def test_the_unit_command_line_is_valid(tmp_path: Path) -> None:
    binary, *arguments = exec_start()
    assert binary == "/opt/tcposcrouter/bin/tcposcrouter"  # where the README's guide puts it
    assert arguments == ["--config", "/etc/tcposcrouter/tcposcrouter.toml"]
    args = parse_args(["--config", str(EXAMPLE_CONFIG)])
    assert args.osc_port == 55555  # the example file, all defaults, is a valid start
