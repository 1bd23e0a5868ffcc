"""Several router processes on one real redis-server, as one router: every guarantee of
docs/protocol.md across nodes, the group-creation race, a node killed, Redis restarted, and
--workers.

Drives cluster/node.py, cluster/presence_sync.py, cluster/publisher.py, cluster/registers.py,
cluster/traffic.py and cluster/writer.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from support.client import Client, WsClient, user_list
from support.osc import IMMEDIATELY, bundle, msg, register
from support.process import (
    RouterProcess,
    free_port,
    wait_until_listening,
    wait_until_worker_listens,
    worker_pids,
)
from support.redis import RedisServer
from tcposcrouter.osc.framing import Framing
from tcposcrouter.server.handoff import owner_of

pytestmark = pytest.mark.timeout(180)


def node(
    start_router: Callable[..., RouterProcess], redis: RedisServer, name: str
) -> RouterProcess:
    return start_router("--cluster", redis.url, "--node-id", name, "-v")


def test_three_nodes_are_one_router(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2, n3 = (node(start_router, redis, f"n{i}") for i in (1, 2, 3))
    ana = Client(n1.osc10_port).join("ana", group)
    bob = Client(n2.osc11_port, Framing.SLIP).join("bob", group)
    assert n2.http_port is not None
    web = WsClient(f"ws://127.0.0.1:{n3.http_port}/osc").join("web", group)
    carl = Client(n1.osc11_port, Framing.SLIP).join("carl", group)  # same node as ana
    everyone = ["ana", "bob", "web", "carl"]
    for client in (ana, bob, web):  # carl, the last, saw the whole list when it joined
        user_list(client, everyone)
    for client in (ana, bob, web, carl):
        client.drain(0.3)

    # Broadcast, every type and a nested bundle, byte for byte, across framings and nodes.
    note = msg("/note", 60, 0.5, "x", b"\xc0\xdb blob", True)
    nested = bundle(IMMEDIATELY, msg("/a", 1), bundle(IMMEDIATELY, msg("/b", 2.5)))
    for sender in (ana, bob, web):
        for packet in (note, nested):
            sender.send(packet)
            for receiver in (ana, bob, web, carl):
                if receiver is not sender:
                    assert receiver.recv().raw == packet
    for client in (ana, bob, web, carl):
        client.expect_nothing(0.2)  # nobody hears itself, nothing twice

    # Private messages across nodes, both ways.
    web.send(msg("/oscrouter/private", "ana", "/psst", 1))
    got = ana.recv()
    assert (got.address, got.args) == ("/oscrouter/private", ["web", "/psst", 1])
    ana.send(msg("/oscrouter/private", "bob", "/back", "x"))
    assert bob.recv().args == ["ana", "/back", "x"]
    for client in (carl, web):
        client.expect_nothing(0.2)

    # A user on two nodes: both its connections hear the group and its private messages.
    bob_on_n3 = Client(n3.osc10_port).join("bob", group)
    bob_on_n3.drain(0.2)
    ana.send(msg("/both", 1))
    assert bob.recv_until("/both").args == [1] and bob_on_n3.recv_until("/both").args == [1]
    carl.send(msg("/oscrouter/private", "bob", "/p", 2))
    assert bob.recv_until("/oscrouter/private").args == ["carl", "/p", 2]
    assert bob_on_n3.recv_until("/oscrouter/private").args == ["carl", "/p", 2]

    # Per-sender order across nodes.
    for number in range(300):
        web.send(msg("/seq", number))
    for receiver in (ana, bob, carl):
        numbers = [receiver.recv_until("/seq").args[0] for _ in range(300)]
        assert numbers == list(range(300))

    # Leaves reach every node's user list; bob stays while one of its connections does.
    bob.close()
    time.sleep(0.5)
    ana.send(msg("/still", 1))
    assert bob_on_n3.recv_until("/still").args == [1]
    web.close()
    user_list(ana, ["ana", "bob", "carl"])
    user_list(bob_on_n3, ["ana", "bob", "carl"])


def test_a_wrong_password_on_any_node_is_refused_and_throttled_everywhere(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    Client(n1.osc10_port).join("ana", group, password="ana-pw")
    for port, user, password, group_password in (
        (n2.osc10_port, "eve", "pw", "not-it"),
        (n2.osc10_port, "ana", "guess", "gpw"),
    ):
        client = Client(port)
        client.send(register(user, group, password=password, group_password=group_password))
        assert client.recv().args[0] == "auth_failed"
    # Failed guesses at ana on n1 count on n2 too: after five, n2 throttles that address.
    for _ in range(4):
        guesser = Client(n1.osc10_port)
        guesser.send(register("ana", group, password="guess"))
        assert guesser.recv().args[0] == "auth_failed"
    time.sleep(0.3)
    late = Client(n2.osc10_port)
    late.send(register("ana", group, password="guess"))
    assert late.recv().args[0] == "login_throttled"
    # A returning ana is let in on the other node while her first connection is still open.
    Client(n2.osc10_port, source="127.0.0.2").join("ana", group, password="ana-pw")


def test_two_nodes_creating_one_group_at_once_exactly_one_wins(
    start_router: Callable[..., RouterProcess], redis: RedisServer
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    rounds = 40
    outcomes: list[tuple[str, str]] = []
    for index in range(rounds):
        name = f"race-{index}-{os.getpid()}"
        clients = [Client(n1.osc10_port), Client(n2.osc10_port)]
        start = threading.Barrier(2)
        replies: list[str] = ["", ""]

        def register_on(
            slot: int, start: threading.Barrier, client: Client, name: str, replies: list[str]
        ) -> None:
            start.wait()
            client.send(register(f"u{slot}", name, group_password=f"password-{slot}"))
            replies[slot] = client.recv(5).address

        threads = [
            threading.Thread(target=register_on, args=(slot, start, clients[slot], name, replies))
            for slot in (0, 1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        outcomes.append((replies[0], replies[1]))
        won = [reply.startswith("/oscrouter/register/") for reply in replies]
        assert won.count(True) == 1, (index, replies)
        assert "/oscrouter/error" in replies
        for client in clients:
            client.close()
    # Both nodes won some: the race really was run on both sides.
    assert {o[0].startswith("/oscrouter/register/") for o in outcomes} == {True, False}


def test_a_killed_node_leaves_every_user_list_and_its_users_rejoin_elsewhere(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2, n3 = (node(start_router, redis, f"n{i}") for i in (1, 2, 3))
    ana = Client(n1.osc10_port).join("ana", group)
    bob = Client(n3.osc10_port).join("bob", group)
    doomed = Client(n2.osc10_port).join("carl", group)
    user_list(ana, ["ana", "bob", "carl"])
    user_list(bob, ["ana", "bob", "carl"])
    n2.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    user_list(ana, ["ana", "bob"], timeout=10)
    user_list(bob, ["ana", "bob"], timeout=10)
    noticed = time.monotonic() - killed
    print(f"a killed node's users left the other nodes' user lists after {noticed:.1f} s")
    assert noticed < 10
    doomed.close()
    # carl's program reconnects to another node and is back in the group, with its password.
    carl = Client(n3.osc10_port).join("carl", group)
    user_list(ana, ["ana", "bob", "carl"])
    carl.drain(0.2)
    ana.send(msg("/welcome", "back"))
    assert carl.recv_until("/welcome").args == ["back"]


def test_redis_restarted_during_traffic(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    sender = Client(n1.osc10_port).join("sender", group)
    local = Client(n1.osc10_port).join("local", group)
    remote = Client(n2.osc10_port).join("remote", group)
    for client in (sender, local):
        user_list(client, ["sender", "local", "remote"])
    for client in (sender, local, remote):
        client.drain(0.3)
    total = 1200  # 100 per second for 12 s; Redis is away from 3 s to 6 s
    stop_redis_at, start_redis_at = 300, 600

    def play() -> None:
        for number in range(total):
            if number == stop_redis_at:
                redis.stop()
            if number == start_redis_at:
                redis.start()
            sender.send(msg("/seq", number))
            time.sleep(0.01)

    player = threading.Thread(target=play)
    player.start()
    heard_local: list[int] = []
    heard_remote: list[int] = []

    def listen(client: Client, heard: list[int], everything: bool) -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                packet = client.recv(3 if everything else 6)
            except AssertionError:
                return
            if packet.address == "/seq":
                heard.append(int(packet.args[0]))  # type: ignore[call-overload]
                if heard[-1] == total - 1:
                    return

    listeners = [
        threading.Thread(target=listen, args=(local, heard_local, True)),
        threading.Thread(target=listen, args=(remote, heard_remote, False)),
    ]
    for thread in listeners:
        thread.start()
    health = []
    time.sleep(4.5)
    assert n1.http_port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{n1.http_port}/healthz", timeout=5) as page:
        health.append(page.read().decode())
    player.join(60)
    for thread in listeners:
        thread.join(60)
    # Local routing never stopped: every message, in order.
    assert heard_local == list(range(total))
    # Across nodes: in order, never twice; what was sent while Redis was away is missing,
    # and the traffic after it came back arrived.
    assert heard_remote == sorted(set(heard_remote))
    assert heard_remote[-1] == total - 1
    assert set(range(stop_redis_at - 50)) <= set(heard_remote)
    assert set(range(start_redis_at + 200, total)) <= set(heard_remote)
    lost = total - len(heard_remote)
    print(f"Redis away for 3 s: {lost} of {total} cross-node messages missed, none twice")
    assert health == ["degraded: the cluster's Redis is away\n"]
    assert "cluster degraded" in n1.console()
    # User lists survived the restart (no flapping: nobody left).
    remote.send(msg("/after", 1))
    assert sender.recv_until("/after").args == [1]


def test_workers_share_one_port_and_form_one_group(
    tmp_path: Path, redis: RedisServer, group: str
) -> None:
    osc, slip, http = free_port(), free_port(), free_port()
    log_dir = tmp_path / "logs"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(osc),
         "--osc11-port", str(slip), "--http-port", str(http), "--cluster", redis.url,
         "--workers", "2", "--node-id", "w", "--log-dir", str(log_dir), "-v"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_listening(supervisor, [osc, slip, http])
        for node in ("w-1", "w-2"):
            wait_until_worker_listens(log_dir / f"tcposcrouter-{node}.log", http)
        names = [f"p{index}" for index in range(24)]
        # Every third one on the SLIP port, as Pure Data connects: handed over alike.
        clients = [
            Client(slip, Framing.SLIP).join(name, group)
            if index % 3 == 0
            else Client(osc).join(name, group)
            for index, name in enumerate(names)
        ]
        user_list(clients[0], names, timeout=10)
        clients[0].drain(0.3)
        for client in clients[1:]:
            client.drain(0.3)
        clients[-1].send(msg("/tutti", 1))
        for client in clients[:-1]:
            assert client.recv_until("/tutti").args == [1]
        # WebSocket players registering from the URL, as Strudel does: handed over at the
        # handshake, like the TCP ones at their register.
        web = [
            WsClient(
                f"ws://127.0.0.1:{http}/osc?user=web{index}&password=pw&group={group}"
                "&group_password=gpw"
            )
            for index in range(6)
        ]
        names += [f"web{index}" for index in range(6)]
        user_list(clients[0], names, timeout=10)
        web[0].drain(0.5)
        clients[0].drain(0.3)
        web[0].send(msg("/from/web", 1))
        assert clients[0].recv_until("/from/web", 5).args == [1]
        for each in web:
            each.close()
        names = names[:-6]
        user_list(clients[0], names, timeout=10)
        # A group lives in one worker: every register was read by its owner, and the other
        # worker handed it the connections the kernel gave it.
        owner = f"w-{owner_of(group, 2)}"
        other = "w-1" if owner == "w-2" else "w-2"
        logs = {node: (log_dir / f"tcposcrouter-{node}.log").read_text() for node in (owner, other)}
        registers = {
            node: len(re.findall(rf"register \w+@{group}", text)) for node, text in logs.items()
        }
        handed = len(re.findall(rf"handed to worker {owner[2:]}, which owns {group}", logs[other]))
        web_handed = len(re.findall(rf"WebSocket for {group} handed", logs[other]))
        print(f"registers by worker: {registers}; handed by {other}: {handed} + {web_handed}")
        assert registers == {owner: len(names) + 6, other: 0}
        assert handed > 0  # 24 connections, spread by the kernel: some landed on the other
        # The worker that does not own the group dies: nobody in the group notices, and the
        # supervisor starts it again.
        (first,) = worker_pids(other)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while worker_pids(other) in ([], [first]):
            assert time.monotonic() < deadline, f"the supervisor did not start {other} again"
            time.sleep(0.1)
        clients[0].send(msg("/still", 1))
        for client in clients[1:]:
            assert client.recv_until("/still", 5).args == [1]
        assert not any(client.closed for client in clients)
        # The owner dies: its members lose their connections, reconnect, and find the group in
        # the owner started again.
        (owning,) = worker_pids(owner)
        os.kill(owning, signal.SIGKILL)
        for client in clients:
            client.wait_closed(5)
        deadline = time.monotonic() + 15
        while worker_pids(owner) in ([], [owning]):
            assert time.monotonic() < deadline, f"the supervisor did not start {owner} again"
            time.sleep(0.1)
        wait_until_worker_listens(log_dir / f"tcposcrouter-{owner}.log", http, times=2)
        again = [Client(osc).join(name, group) for name in names[:6]]
        user_list(again[0], names[:6], timeout=10)
        again[-1].send(msg("/again", 1))
        for client in again[:-1]:
            assert client.recv_until("/again", 5).args == [1]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0


def test_a_place_is_kept_on_its_node_and_elsewhere_the_member_registers_anew(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    """docs/cluster.md: a kept place is held by its node; a resume there takes it back with the
    gap (sent from another node); a resume at another node is resume_expired, and the member
    registers there instead, without the others ever seeing it leave."""
    n1, n2 = node(start_router, redis, "k1"), node(start_router, redis, "k2")
    ana = Client(n1.osc10_port).join("ana", group)
    bob = Client(n2.osc10_port).join("bob", group)
    ana.recv_until("/oscrouter/userlist")
    ana.send(msg("/oscrouter/session", 3))
    token, granted = ana.recv_until("/oscrouter/session").args
    assert granted == 3 and isinstance(token, str)
    ana.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ana.close()  # reset: ana's place is held on n1
    time.sleep(0.3)
    for n in range(20):
        bob.send(msg("/gap", n))  # from n2, through Redis, into the held place on n1
    time.sleep(0.3)
    back = Client(n1.osc10_port)
    back.send(msg("/oscrouter/session/resume", group, token, 0))
    assert back.recv().raw == msg("/oscrouter/session/resumed", 0)
    assert [back.recv().args[0] for _ in range(20)] == list(range(20))
    back.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    back.close()
    time.sleep(0.3)
    elsewhere = Client(n2.osc10_port)
    elsewhere.send(msg("/oscrouter/session/resume", group, token, 20))
    error = elsewhere.recv()
    assert (error.address, error.args[0]) == ("/oscrouter/error", "resume_expired")
    elsewhere.join("ana", group)  # on the same connection, at the other node
    time.sleep(4)  # the held place on n1 has ended meanwhile
    lists = [p.args for p in bob.drain(0.5) if p.address == "/oscrouter/userlist"]
    assert all("ana" in names for names in lists)  # nobody saw ana leave
    bob.send(msg("/after", 1))
    assert elsewhere.recv_until("/after").args == [1]
