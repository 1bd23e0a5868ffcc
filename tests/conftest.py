"""Fixtures that start the real router process on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from helpers import Client

# Property tests: a few thousand examples each in every run (CI included); the "fuzz" profile is
# the long run described in the README (scripts/fuzz, or --hypothesis-profile=fuzz).
settings.register_profile("default", max_examples=3000, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=500_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# With CI set, a test that needs a real peer program (sclang, pd) fails when it is missing
# instead of skipping: CI installs them, so a skip there would hide a broken install.
REQUIRE_PEERS = bool(os.environ.get("CI"))


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: see scripts/install-system-packages)"
        if REQUIRE_PEERS:
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    osc10_port: int
    osc11_port: int
    log_dir: Path

    def console(self) -> str:
        """What the router printed on its console (stdout and stderr)."""
        return (self.log_dir / "console.txt").read_text()

    def log(self) -> str:
        path = self.log_dir / "tcposcrouter.log"
        return path.read_text() if path.exists() else ""

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)


def start_router_process(tmp: Path, *extra: str) -> RouterProcess:
    osc10, osc11 = free_port(), free_port()
    hosts = ["--host", "127.0.0.1"] + (["--host", "::1"] if ipv6_loopback_works() else [])
    log_dir = tmp / f"log-{osc10}"
    log_dir.mkdir(parents=True)
    with open(log_dir / "console.txt", "wb") as console:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcposcrouter",
                "--osc-port",
                str(osc10),
                "--osc11-port",
                str(osc11),
                *hosts,
                "--log-dir",
                str(log_dir),
                *extra,
            ],
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    router = RouterProcess(process, osc10, osc11, log_dir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"router exited with {process.returncode}: {router.console()}")
        try:
            for port, flag in ((osc10, "--disable-osc10"), (osc11, "--disable-osc11")):
                if flag in extra:
                    continue
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return router
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("router did not start listening within 15 s")


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    """Start a router of the test's own, with extra flags; stopped after the test."""
    started: list[RouterProcess] = []

    def start(*extra: str) -> RouterProcess:
        router = start_router_process(tmp_path, *extra)
        started.append(router)
        return router

    yield start
    for router in started:
        if router.process.poll() is None:
            router.process.kill()
            router.process.wait()


@pytest.fixture(scope="session")
def shared_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """One router for the tests that do not need their own; each test uses its own group."""
    router = start_router_process(tmp_path_factory.mktemp("router"))
    yield router
    assert router.stop() == 0, "the router did not exit cleanly on SIGTERM"


@pytest.fixture
def router(shared_router: RouterProcess) -> RouterProcess:
    if shared_router.process.poll() is not None:
        pytest.fail("the shared router has died; see its log")
    return shared_router


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    Client.close_all()


@pytest.fixture
def group() -> str:
    """A group name no other test uses."""
    return "g-" + uuid.uuid4().hex[:10]
