"""The cluster when Redis misbehaves (docs/cluster.md): Redis losing its memory while a node is
cut off from it, a node away longer than the store's restoring, a frozen Redis, and a link cut
silently. Everything runs in a network namespace of the test's own (needs root, `ip`, `nft`),
with a real redis-server and real router processes; one node reaches Redis at 127.0.0.2, which
the test cuts without a FIN or an RST, as a broken network would."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.client import Client
from support.netns import Lab, lab, namespaces_work
from support.osc import msg, register
from support.process import RouterProcess, start_router_process
from support.redis import RedisServer

pytestmark = pytest.mark.timeout(240)

CUT_ADDRESS = "127.0.0.2"


@pytest.fixture
def space() -> Iterator[Lab]:
    why_not = namespaces_work()
    if why_not is not None:
        if os.environ.get("CI"):
            pytest.fail(why_not)
        pytest.skip(why_not)
    with lab() as made:
        yield made


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[RouterProcess]]:
    started: list[RouterProcess] = []
    yield started
    for router in started:
        if router.process.poll() is None:
            router.process.kill()
            router.process.wait()


def start_node(
    space: Lab, nodes: list[RouterProcess], tmp: Path, url: str, name: str
) -> RouterProcess:
    router = start_router_process(tmp, "--cluster", url, "--node-id", name, "-v", lab=space)
    nodes.append(router)
    return router


def client(space: Lab, router: RouterProcess) -> Client:
    with space.inside():
        return Client(router.osc10_port)


def joined(space: Lab, router: RouterProcess, user: str, group: str, **passwords: str) -> Client:
    return client(space, router).join(user, group, **passwords)


def refusal(space: Lab, router: RouterProcess, user: str, group: str, group_password: str) -> str:
    """The error a register gets, or "admitted"."""
    trying = client(space, router)
    trying.send(register(user, group, group_password=group_password))
    first = trying.recv(timeout=5)
    trying.close()
    return "admitted" if first.address.startswith("/oscrouter/register/") else str(first.args[0])


def wait_until(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def back_on_redis(router: RouterProcess, name: str) -> bool:
    """Whether `router` has joined Redis a second time (after a restart)."""
    return router.console().count(f"cluster: node {name} on Redis") >= 2


def restart_empty(redis: RedisServer) -> None:
    """Redis crashes and comes back with nothing: no persistence, as a misconfigured server."""
    redis.stop()
    redis.start()


def test_a_group_password_survives_redis_losing_its_memory(
    space: Lab, nodes: list[RouterProcess], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", lab=space)
    try:
        a = start_node(space, nodes, tmp_path, redis.url_via(CUT_ADDRESS), "a")
        b = start_node(space, nodes, tmp_path, redis.url, "b")
        quinn = joined(space, a, "quinn", "trio")
        bea = joined(space, b, "bea", "other")
        time.sleep(1.0)  # b has seen a's users
        # a is cut off from Redis without a word, and Redis loses everything meanwhile.
        space.cut(CUT_ADDRESS, redis.port)
        restart_empty(redis)
        # Local music on a never stops, cut off or not.
        for n in range(20):
            quinn.send(msg("/alone", n))
        # b is back on Redis and finds it empty: a register that would make "trio" anew, with
        # any password, waits for a to write its groups back.
        wait_until(lambda: back_on_redis(b, "b"), 15, "b never came back to Redis")
        assert refusal(space, b, "mallory", "trio", "not-the-password") == "store_unavailable"
        # A group nobody had is made as usual once a is back... but a is still away: wait.
        space.mend()
        wait_until(
            lambda: refusal(space, b, "mallory", "trio", "not-the-password") == "auth_failed",
            30,
            "a never wrote trio's password back",
        )
        # The rightful password gets in on b, into a's group: they hear each other.
        ringo = joined(space, b, "ringo", "trio")
        ringo.send(msg("/across", 1))
        assert quinn.recv_until("/across", timeout=5).args == [1]
        assert "another group password" not in a.console() + b.console()
        bea.send(msg("/other", 1))  # b's own group never noticed
    finally:
        redis.stop()


def test_a_node_away_longer_than_the_restoring_keeps_its_group_apart(
    space: Lab, nodes: list[RouterProcess], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", lab=space)
    try:
        a = start_node(space, nodes, tmp_path, redis.url_via(CUT_ADDRESS), "a")
        b = start_node(space, nodes, tmp_path, redis.url, "b")
        quinn = joined(space, a, "quinn", "trio")
        joined(space, b, "bea", "other")
        time.sleep(1.0)
        space.cut(CUT_ADDRESS, redis.port)
        restart_empty(redis)
        wait_until(lambda: back_on_redis(b, "b"), 15, "b never came back to Redis")
        time.sleep(16)  # longer than the store waits for a node that had users
        # a is away, not late: "trio" is a new group for b, with the password it is given.
        mallory = joined(space, b, "mallory", "trio", group_password="not-the-password")
        space.mend()
        wait_until(lambda: back_on_redis(a, "a"), 40, "a never came back to Redis")
        time.sleep(1.0)
        # Two groups named trio that never hear each other.
        mallory.drain(0.5)
        quinn.drain(0.5)
        mallory.send(msg("/from/mallory", 1))
        quinn.send(msg("/from/quinn", 1))
        assert [p.address for p in quinn.drain(1.0)] == []
        assert [p.address for p in mallory.drain(1.0)] == []
        # Nor does anyone on b with trio's rightful password get into a's trio.
        assert refusal(space, b, "ringo", "trio", "gpw") == "auth_failed"
        assert "apart from the cluster's trio" in a.console()
        assert "lost what it held" in a.console() + b.console()
        # Once b's trio has emptied, a's joins the cluster again (at its next resync).
        mallory.close()
        wait_until(lambda: "joins the cluster's again" in a.console(), 30, "trio stayed apart")
        ringo = joined(space, b, "ringo", "trio")
        ringo.send(msg("/across", 2))
        assert quinn.recv_until("/across", timeout=5).args == [2]
    finally:
        redis.stop()


def play_and_listen(
    sender: Client, listener: Client, count: int, during: Callable[[], None]
) -> list[float]:
    """Send `count` numbered messages at 100 a second while `during` runs in between; return
    the gaps (s) between consecutive arrivals at `listener`, after checking every one arrived,
    in order."""
    arrivals: list[float] = []
    numbers: list[int] = []

    def listen() -> None:
        while len(numbers) < count:
            packet = listener.recv_until("/seq", timeout=10)
            numbers.append(int(packet.args[0]))  # type: ignore[call-overload]
            arrivals.append(time.monotonic())

    thread = threading.Thread(target=listen)
    thread.start()
    for n in range(count):
        if n == count // 4:
            during()
        sender.send(msg("/seq", n))
        time.sleep(0.01)
    thread.join(30)
    assert numbers == list(range(count))
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


def test_a_frozen_redis_never_stalls_local_routing(
    space: Lab, nodes: list[RouterProcess], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", lab=space)
    try:
        a = start_node(space, nodes, tmp_path, redis.url, "a")
        b = start_node(space, nodes, tmp_path, redis.url, "b")
        sender, local = joined(space, a, "sender", "band"), joined(space, a, "local", "band")
        remote = joined(space, b, "remote", "band")
        time.sleep(1.0)
        for each in (sender, local, remote):
            each.drain(0.3)
        assert redis.process is not None
        pid = redis.process.pid
        gaps = play_and_listen(sender, local, 600, lambda: os.kill(pid, signal.SIGSTOP))
        # Redis frozen for the last three quarters of the music: the local member heard all of
        # it with no gap a listener would call a stall.
        assert max(gaps) < 0.5, f"a gap of {max(gaps):.3f} s"
        os.kill(pid, signal.SIGCONT)
        remote.drain(1.0)
        time.sleep(1.0)
        sender.send(msg("/thawed", 1))
        assert remote.recv_until("/thawed", timeout=10).args == [1]
        assert a.process.poll() is None and b.process.poll() is None
    finally:
        if redis.process is not None:
            os.kill(redis.process.pid, signal.SIGCONT)
        redis.stop()


def test_a_silently_cut_link_never_stalls_local_routing(
    space: Lab, nodes: list[RouterProcess], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis", lab=space)
    try:
        a = start_node(space, nodes, tmp_path, redis.url_via(CUT_ADDRESS), "a")
        b = start_node(space, nodes, tmp_path, redis.url, "b")
        sender, local = joined(space, a, "sender", "band"), joined(space, a, "local", "band")
        remote = joined(space, b, "remote", "band")
        time.sleep(1.0)
        for each in (sender, local, remote):
            each.drain(0.3)
        gaps = play_and_listen(sender, local, 600, lambda: space.cut(CUT_ADDRESS, redis.port))
        assert max(gaps) < 0.5, f"a gap of {max(gaps):.3f} s"
        space.mend()
        remote.drain(0.5)

        def heard_across() -> bool:
            sender.send(msg("/mended", 1))
            return any(p.address == "/mended" for p in remote.drain(0.5))

        wait_until(heard_across, 60, "the link never came back")
    finally:
        redis.stop()
