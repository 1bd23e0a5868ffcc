"""Fixtures that start the real router process on free loopback ports, and test settings."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from support.client import Client
from support.process import RouterProcess, TwoWorkers, start_router_process
from support.redis import RedisServer

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


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[TwoWorkers]:
    """`tcposcrouter --workers 2` of the test's own; stopped after it."""
    router = TwoWorkers(tmp_path)
    try:
        yield router
    finally:
        router.process.send_signal(signal.SIGTERM)
        router.process.wait(30)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for a cluster's nodes."""
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()
