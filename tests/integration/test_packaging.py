"""The package as a user gets it: `python -m build` on this tree, the sdist and the wheel each
installed into a fresh venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import urllib.request
import venv
from collections.abc import Iterator
from contextlib import contextmanager
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
    with serving(bin_dir / "tcposcrouter", cwd) as http:
        for path in ("/", "/client/", "/client/vendor/osc-browser.min.js", "/healthz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5) as page:
                assert page.status == 200, path


@contextmanager
def serving(
    command: Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 15.0
) -> Iterator[int]:
    """`command` (the router, or what starts it) on free ports until it listens; yields its
    HTTP port, then stops it with SIGTERM, which it must take with exit status 0."""
    ports = [free_port(), free_port()]
    router = subprocess.Popen(
        [command, "--host", "127.0.0.1", "--osc-port", str(ports[0]), "--no-osc11",
         "--http-port", str(ports[1]), "--admin-token", "t"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, env=env,
    )  # fmt: skip
    try:
        wait_until_listening(router, ports, timeout)
        yield ports[1]
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


def start_router_script(clone: Path) -> None:
    """`scripts/start-router` in `clone`, until the router listens; then stopped."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable}
    with serving(clone / "scripts" / "start-router", clone, env, timeout=300):
        pass


@pytest.mark.timeout(900)
def test_start_router_installs_again_only_when_the_sources_changed(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    for part in ("src", "examples", "scripts"):
        shutil.copytree(ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / part, clone / part)

    def installed() -> float:
        (record,) = (clone / ".venv").glob("lib/python*/site-packages/tcposcrouter-*.dist-info")
        return (record / "RECORD").stat().st_mtime

    start_router_script(clone)
    first = installed()
    start_router_script(clone)
    assert installed() == first, "a restart with nothing changed installed again"
    (clone / "src" / "tcposcrouter" / "limits.py").touch()
    start_router_script(clone)
    assert installed() > first, "changed sources were not installed"
