"""`--workers 2` without Redis: the real supervisor and its two worker processes, one machine.
Every kind of connection ends up in the worker that owns its group: plain TCP handed over,
TLS and WebSockets that register by message relayed (server/relay.py).

Drives cluster/workers.py and server/relay.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.client import Client, OneThreadWsClient, user_list
from support.osc import msg
from support.process import free_port, wait_until_listening, wait_until_worker_listens, worker_pids
from support.tls import make_certificate, tls_socket
from tcposcrouter.osc.framing import Framing
from tcposcrouter.server.handoff import owner_of

pytestmark = pytest.mark.timeout(180)


class Workers:
    """`tcposcrouter --workers 2` with TLS ports, logging each worker to a file of its own."""

    def __init__(self, folder: Path) -> None:
        self.cert, key = make_certificate(folder / "cert")
        self.osc, self.slip, self.http = free_port(), free_port(), free_port()
        self.tls, self.tls_slip = free_port(), free_port()
        self.logs = folder / "logs"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1",
             "--osc-port", str(self.osc), "--osc11-port", str(self.slip),
             "--http-port", str(self.http), "--admin-token", "secret-token",
             "--tls-cert", str(self.cert), "--tls-key", str(key),
             "--tls-osc-port", str(self.tls), "--tls-osc11-port", str(self.tls_slip),
             "--workers", "2", "--node-id", "solo", "--log-dir", str(self.logs), "-v"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until_listening(self.process, [self.osc, self.slip, self.http, self.tls])
        for index in (1, 2):
            self.wait_listening(index)

    def log_path(self, index: int) -> Path:
        return self.logs / f"tcposcrouter-solo-{index}.log"

    def wait_listening(self, index: int, times: int = 1) -> None:
        wait_until_worker_listens(self.log_path(index), self.http, times)

    def log(self, index: int) -> str:
        return self.log_path(index).read_text()

    def pid(self, index: int) -> list[int]:
        return worker_pids(f"solo-{index}")

    def wss(self, query: str = "") -> OneThreadWsClient:
        context = ssl.create_default_context(cafile=str(self.cert))
        return OneThreadWsClient(f"wss://localhost:{self.http}/osc{query}", context)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    router = Workers(tmp_path)
    try:
        yield router
    finally:
        if router.process.poll() is None:
            router.stop()
        for index in (1, 2):  # shown with a failure's report
            print(f"--- worker {index}'s log, its end:\n" + router.log(index)[-6000:])


def test_every_kind_of_connection_meets_in_the_owner_without_redis(
    workers: Workers, group: str
) -> None:
    members: dict[str, Client] = {}
    # Eight of each kind: the kernel spreads them over both workers.
    for index in range(8):
        members[f"tcp{index}"] = Client(workers.osc)
        members[f"slip{index}"] = Client(workers.slip, Framing.SLIP)
        members[f"tls{index}"] = Client(workers.tls, sock=tls_socket(workers.tls, workers.cert))
        sock = tls_socket(workers.tls_slip, workers.cert)
        members[f"tlsslip{index}"] = Client(workers.tls_slip, Framing.SLIP, sock=sock)
        members[f"wss{index}"] = workers.wss()  # a register by message, over TLS
        members[f"url{index}"] = workers.wss(
            f"?user=url{index}&password=pw&group={group}&group_password=gpw"
        )
    for name, client in members.items():
        if not name.startswith("url"):
            client.join(name, group)
    names = list(members)
    first = members["tcp0"]
    user_list(first, names, timeout=10)
    for client in members.values():
        client.drain(0.2)

    # Everyone hears everyone, whichever worker accepted them.
    for sender_name in ("tcp1", "tls2", "wss3", "url4", "slip5", "tlsslip6"):
        note = msg("/note", sender_name, 60)
        members[sender_name].send(note)
        for name, client in members.items():
            if name != sender_name:
                assert client.recv_until("/note", 5).raw == note, name
    # A private message from a relayed WebSocket to a relayed TLS member, and back.
    members["wss0"].send(msg("/oscrouter/private", "tls7", "/psst", 1))
    assert members["tls7"].recv_until("/oscrouter/private", 5).args == ["wss0", "/psst", 1]
    members["tls7"].send(msg("/oscrouter/private", "wss0", "/psst", 2))
    assert members["wss0"].recv_until("/oscrouter/private", 5).args == ["tls7", "/psst", 2]
    members["tcp1"].expect_nothing(0.3)

    # Every register was read by the owner; the other worker handed or relayed what it got.
    owner = owner_of(group, 2)
    other = 3 - owner
    logs = {owner: workers.log(owner), other: workers.log(other)}
    registers = {index: len(re.findall(rf"register \w+@{group}", logs[index])) for index in logs}
    relayed = re.findall(rf"relayed to worker {owner}, which owns {group}", logs[other])
    handed = re.findall(rf"handed to worker {owner}, which owns {group}", logs[other])
    print(f"registers: {registers}; {other} handed {len(handed)}, relayed {len(relayed)}")
    assert registers == {owner: len(names), other: 0}
    assert relayed and handed  # 32 TLS and WebSocket connections, 16 TCP: spread by the kernel
    assert "relayed by another worker" in logs[owner]

    # A relayed member that leaves is gone from the group at once.
    for name in [n for n in names if n.startswith(("wss", "tls"))]:
        leaving = members.pop(name)
        leaving.drain(0.05)
        leaving.close()
    names = list(members)
    user_list(first, names, timeout=10)

    # The owner dies: every member is closed (the relayed ones by the worker that relays
    # them), and the group meets again in the owner started again.
    (owning,) = workers.pid(owner)
    os.kill(owning, signal.SIGKILL)
    for client in members.values():
        client.wait_closed(5)
    deadline = time.monotonic() + 15
    while workers.pid(owner) in ([], [owning]):
        assert time.monotonic() < deadline, "the supervisor did not start the owner again"
        time.sleep(0.1)
    workers.wait_listening(owner, times=2)
    again = [workers.wss().join(f"again{index}", group) for index in range(4)]
    again += [
        Client(workers.tls, sock=tls_socket(workers.tls, workers.cert)).join(f"t{index}", group)
        for index in range(4)
    ]
    rejoined = [*(f"again{i}" for i in range(4)), *(f"t{i}" for i in range(4))]
    user_list(again[0], rejoined, timeout=10)
    again[-1].send(msg("/again", 1))
    for client in again[:-1]:
        assert client.recv_until("/again", 5).args == [1]


def test_a_relayed_member_that_never_reads_is_reset_and_the_group_plays_on(
    workers: Workers, group: str
) -> None:
    listener = Client(workers.osc).join("listener", group)
    # Relayed ones: TLS members, until one lands on the worker that does not own the group.
    owner = owner_of(group, 2)
    stuck: Client | None = None
    for index in range(16):
        before = workers.log(3 - owner).count("relayed to worker")
        client = Client(workers.tls, sock=tls_socket(workers.tls, workers.cert))
        client.join(f"deaf{index}", group)
        if workers.log(3 - owner).count("relayed to worker") > before:
            stuck = client
            break
        client.close()
    assert stuck is not None, "no TLS connection landed on the other worker"
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.drain(0.3)
    sender = Client(workers.slip, Framing.SLIP).join("sender", group)
    blob = msg("/big", b"x" * 60_000)
    received = 0
    for _ in range(20):  # 12 MB in all: far more than the relay and the owner hold for it
        for _ in range(10):
            sender.send(blob)
        for _ in range(10):  # the listener keeps up
            received += listener.recv_until("/big", 10).address == "/big"
    assert received == 200  # the listener heard every one
    stuck.wait_closed(10)  # and the deaf one was let go
    sender.send(msg("/after", 1))
    assert listener.recv_until("/after", 5).args == [1]


def scrape(workers: Workers, path: str) -> str:
    context = ssl.create_default_context(cafile=str(workers.cert))
    url = f"https://localhost:{workers.http}{path}"
    with urllib.request.urlopen(url, context=context, timeout=5) as answer:
        return str(answer.read().decode())


def metric(text: str, name: str) -> float:
    (value,) = re.findall(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(value)


def dashboard(workers: Workers, asked: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the access reply, the first view) of a /live dashboard that asks for `asked`."""
    context = ssl.create_default_context(cafile=str(workers.cert))
    live = OneThreadWsClient(f"wss://localhost:{workers.http}/live", context)
    try:
        live.send_text(json.dumps(asked))
        access = json.loads(live.recv_text(5))
        view = json.loads(live.recv_text(5))
    finally:
        live.close()
    return access, view


def test_metrics_health_and_the_dashboard_show_the_whole_router(
    workers: Workers, group: str
) -> None:
    owner = owner_of(group, 2)
    other_group = next(f"{group}-{n}" for n in range(99) if owner_of(f"{group}-{n}", 2) != owner)
    band = [Client(workers.osc).join(f"b{index}", group) for index in range(5)]
    choir = [workers.wss().join(f"c{index}", other_group) for index in range(3)]
    band[0].send(msg("/note", 1))
    for client in band[1:]:
        client.recv_until("/note", 5)
    # Each scrape lands on either worker (a new connection each, spread by the kernel) and
    # counts both groups: they live in different workers.
    for _ in range(6):
        text = scrape(workers, "/metrics")
        assert metric(text, "tcposcrouter_workers") == 2
        assert metric(text, "tcposcrouter_users") == 8
        assert metric(text, "tcposcrouter_groups") == 2
        assert metric(text, "tcposcrouter_registrations_total") == 8
        assert scrape(workers, "/healthz") == "ok\n"
    # The admin sees every group, whichever worker serves the dashboard.
    for _ in range(4):
        access, view = dashboard(workers, {"token": "secret-token"})
        assert access["access"] == "admin"
        pages = {page["name"]: page for page in view["group_pages"]}
        assert sorted(pages) == sorted([group, other_group])
        assert len(pages[group]["users"]) == 5 and len(pages[other_group]["users"]) == 3
        assert view["users"] == 8
    # A member sees its group's page, its password checked by the worker that owns it.
    for _ in range(4):
        access, view = dashboard(workers, {"group": other_group, "password": "gpw"})
        assert access["access"] == "member", access
        (page,) = view["group_pages"]
        assert sorted(user["name"] for user in page["users"]) == ["c0", "c1", "c2"]
        assert "peer" not in page["users"][0]["connections"][0]
        access, _ = dashboard(workers, {"group": other_group, "password": "wrong"})
        assert access["access"] == "public" and access["error"]
    for client in choir:
        client.drain(0.05)
    # A worker killed: /healthz from the other says so while it is started again.
    victim = owner_of(other_group, 2)
    (pid,) = workers.pid(victim)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # its port closed: new connections go to the other (it restarts after 1 s)
    answers = {scrape(workers, "/healthz") for _ in range(5)}
    assert answers == {f"degraded: worker {victim} not answering\n"}, answers
    deadline = time.monotonic() + 15
    while scrape(workers, "/healthz") != "ok\n":
        assert time.monotonic() < deadline, "the worker did not come back"
        time.sleep(0.2)
