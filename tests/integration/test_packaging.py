"""The package as a user gets it: `python -m build` on this tree, the sdist and the wheel each
installed into a fresh venv."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import urllib.request
import venv
from pathlib import Path

import pytest

import tcposcrouter
from support.process import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parents[2]


def install(tmp_path: Path, name: str, artefact: Path) -> Path:
    """A fresh venv with `artefact` (a wheel or an sdist) installed; its bin folder."""
    venv.create(tmp_path / name, with_pip=True)
    bin_dir = tmp_path / name / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", str(artefact)], check=True)
    return bin_dir


def runs_and_serves(bin_dir: Path, cwd: Path) -> None:
    """Both commands say the version; the router serves the dashboard and the browser client
    from the installed package itself (not from a checkout)."""
    version = subprocess.run(
        [bin_dir / "tcposcrouter", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"tcposcrouter {tcposcrouter.__version__}"
    client = subprocess.run(
        [bin_dir / "tcposcrouter-client", "--version"], capture_output=True, text=True, check=True
    )
    assert client.stdout.strip() == version.stdout.strip()
    ports = [free_port(), free_port()]
    router = subprocess.Popen(
        [bin_dir / "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(ports[0]),
         "--disable-osc11", "--http-port", str(ports[1])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip
    try:
        wait_until_listening(router, ports)
        for path in ("/", "/client/", "/client/vendor/osc-browser.min.js", "/healthz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}{path}", timeout=5) as page:
                assert page.status == 200, path
    finally:
        router.terminate()
        assert router.wait(15) == 0


@pytest.mark.timeout(900)
def test_python_m_build_makes_an_sdist_and_a_wheel_that_install_and_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("tcposcrouter-*.whl")
    (sdist,) = dist.glob("tcposcrouter-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for shipped in (
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "examples/tcposcrouter.toml",
        "examples/systemd/tcposcrouter.service",
        "examples/browser/index.html",
    ):
        assert shipped in names, shipped  # fmt: skip
    runs_and_serves(install(tmp_path, "from-wheel", wheel), tmp_path)
    runs_and_serves(install(tmp_path, "from-sdist", sdist), tmp_path)
