"""The cluster when Redis misbehaves (docs/cluster.md): Redis losing its memory while a node is
cut off from it, a node away longer than the store's restoring, a frozen Redis, and a link cut
silently. Everything runs in a network namespace of the test's own (needs root, `ip`, `nft`),
with a real redis-server and real router processes; one node reaches Redis at 127.0.0.2, which
the test cuts without a FIN or an RST, as a broken network would.

Drives cluster/link.py."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.client import Client
from support.netns import Lab, lab, namespaces_work
from support.osc import msg, register
from support.process import RouterProcess, start_router_process, wait_until
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


@dataclass
class Pair:
    """Two nodes on one Redis in the namespace; `a` reaches Redis at CUT_ADDRESS."""

    space: Lab
    redis: RedisServer
    a: RouterProcess
    b: RouterProcess


@pytest.fixture
def pair(space: Lab, tmp_path: Path) -> Iterator[Pair]:
    redis = RedisServer(tmp_path / "redis", lab=space)
    started: list[RouterProcess] = []
    try:
        for name, url in (("a", redis.url_via(CUT_ADDRESS)), ("b", redis.url)):
            started.append(
                start_router_process(tmp_path, "--cluster", url, "--node-id", name, "-v", lab=space)
            )
        yield Pair(space, redis, *started)
    finally:
        for router in started:
            if router.process.poll() is None:
                router.process.kill()
                router.process.wait()
        if redis.process is not None:
            os.kill(redis.process.pid, signal.SIGCONT)  # if a test froze it
        redis.stop()


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


def back_on_redis(router: RouterProcess, name: str) -> bool:
    """Whether `router` has joined Redis a second time (after a restart)."""
    return router.console().count(f"cluster: node {name} on Redis") >= 2


def restart_empty(redis: RedisServer) -> None:
    """Redis crashes and comes back with nothing: no persistence, as a misconfigured server."""
    redis.stop()
    redis.start()


def lose_redis_while_a_is_cut_off(pair: Pair) -> Client:
    """quinn plays in trio on a; a is cut off from Redis without a word, and Redis comes back
    empty; b is back on it. Return quinn."""
    space = pair.space
    quinn = joined(space, pair.a, "quinn", "trio")
    joined(space, pair.b, "bea", "other")
    time.sleep(1.0)  # b has seen a's users
    space.cut(CUT_ADDRESS, pair.redis.port)
    restart_empty(pair.redis)
    wait_until(lambda: back_on_redis(pair.b, "b"), 15, "b never came back to Redis", poll=0.2)
    return quinn


def test_a_group_password_survives_redis_losing_its_memory(pair: Pair) -> None:
    space, a, b = pair.space, pair.a, pair.b
    quinn = lose_redis_while_a_is_cut_off(pair)
    # b finds the store empty: a register that would make "trio" anew, with any password,
    # waits for a to write its groups back.
    assert refusal(space, b, "mallory", "trio", "not-the-password") == "store_unavailable"
    # a comes back and writes trio back: the wrong password is now simply wrong.
    space.mend()
    wait_until(
        lambda: refusal(space, b, "mallory", "trio", "not-the-password") == "auth_failed",
        30,
        "a never wrote trio's password back",
        poll=0.2,
    )
    # The rightful password gets in on b, into a's group: they hear each other.
    ringo = joined(space, b, "ringo", "trio")
    ringo.send(msg("/across", 1))
    assert quinn.recv_until("/across", timeout=5).args == [1]
    assert "lost what it held" in b.console()
    assert "another group password" not in a.console() + b.console()


def test_a_node_away_longer_than_the_restoring_keeps_its_group_apart(pair: Pair) -> None:
    space, a, b = pair.space, pair.a, pair.b
    quinn = lose_redis_while_a_is_cut_off(pair)
    time.sleep(16)  # longer than the store waits for a node that had users
    # a is away, not late: "trio" is a new group for b, with the password it is given.
    mallory = joined(space, b, "mallory", "trio", group_password="not-the-password")
    space.mend()
    wait_until(lambda: back_on_redis(a, "a"), 40, "a never came back to Redis", poll=0.2)
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
    # Once b's trio has emptied, a's joins the cluster again (at its next resync).
    mallory.close()
    wait_until(
        lambda: "joins the cluster's again" in a.console(), 30, "trio stayed apart", poll=0.2
    )
    ringo = joined(space, b, "ringo", "trio")
    ringo.send(msg("/across", 2))
    assert quinn.recv_until("/across", timeout=5).args == [2]


def play_and_listen(
    sender: Client, listener: Client, count: int, during: Callable[[], None]
) -> list[float]:
    """Send `count` numbered messages at 100 a second, calling `during` a quarter of the way
    through; return the gaps (s) between consecutive arrivals at `listener`, after checking
    that every one arrived, in order."""
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


def band_on_both(pair: Pair) -> tuple[Client, Client, Client]:
    """(sender and listener on a, a listener on b), all in one group, their joins read."""
    space = pair.space
    sender, local = joined(space, pair.a, "sender", "band"), joined(space, pair.a, "local", "band")
    remote = joined(space, pair.b, "remote", "band")
    time.sleep(1.0)
    for each in (sender, local, remote):
        each.drain(0.3)
    return sender, local, remote


def test_a_frozen_redis_never_stalls_local_routing(pair: Pair) -> None:
    sender, local, remote = band_on_both(pair)
    assert pair.redis.process is not None
    pid = pair.redis.process.pid
    gaps = play_and_listen(sender, local, 600, lambda: os.kill(pid, signal.SIGSTOP))
    print(f"Redis frozen: 600 of 600 local messages in order, largest gap {max(gaps):.3f} s")
    # Redis frozen for the last three quarters of the music: the local member heard all of it,
    # with no gap a listener would call a stall (the sender's own spacing is 10 ms).
    assert max(gaps) < 0.5, f"a gap of {max(gaps):.3f} s"
    os.kill(pid, signal.SIGCONT)
    wait_until(
        lambda: heard_across(sender, remote), 30, "no packet crossed after the thaw", poll=0.2
    )
    assert pair.a.process.poll() is None and pair.b.process.poll() is None


def test_a_silently_cut_link_never_stalls_local_routing(pair: Pair) -> None:
    sender, local, remote = band_on_both(pair)
    cut = pair.space.cut
    gaps = play_and_listen(sender, local, 600, lambda: cut(CUT_ADDRESS, pair.redis.port))
    print(f"link cut: 600 of 600 local messages in order, largest gap {max(gaps):.3f} s")
    assert max(gaps) < 0.5, f"a gap of {max(gaps):.3f} s"
    pair.space.mend()
    wait_until(lambda: heard_across(sender, remote), 60, "the link never came back", poll=0.2)


def heard_across(sender: Client, remote: Client) -> bool:
    sender.send(msg("/across", 1))
    return any(p.address == "/across" for p in remote.drain(0.5))
