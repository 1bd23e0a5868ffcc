"""The package as a user gets it: a wheel built from this tree, installed into a fresh venv."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest

import tcposcrouter
from support.process import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("tcposcrouter-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", str(wheel)], check=True)

    version = subprocess.run(
        [bin_dir / "tcposcrouter", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"tcposcrouter {tcposcrouter.__version__}"
    client = subprocess.run(
        [bin_dir / "tcposcrouter-client", "--version"], capture_output=True, text=True, check=True
    )
    assert client.stdout.strip() == version.stdout.strip()

    # The installed router serves the dashboard and the browser client from the wheel itself.
    ports = [free_port(), free_port()]
    router = subprocess.Popen(
        [bin_dir / "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(ports[0]),
         "--disable-osc11", "--http-port", str(ports[1])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_until_listening(router, ports)
        for path in ("/", "/client/", "/client/vendor/osc-browser.min.js", "/healthz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}{path}", timeout=5) as page:
                assert page.status == 200, path
    finally:
        router.terminate()
        assert router.wait(15) == 0
