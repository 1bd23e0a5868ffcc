"""One port for every client (`--port`, docs/operating.md "One port for every client"): OSC in
both framings, python-osc, WebSocket, the HTTP pages, OSC over TLS and WSS all reach one group
through a single listening port; what is none of them is refused as at the other ports, and a
silent connection is closed. Drives server/one_port.py end to end (sclang, Pd and Chromium on
the one port: tests/interop/test_one_port_clients.py)."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.tcp_client import SimpleTCPClient

from support.client import Client, WsClient
from support.osc import msg
from support.process import RouterProcess, free_port, wait_until_listening
from support.tls import make_certificate, tls_socket
from tcposcrouter.osc.framing import Framing

pytestmark = pytest.mark.timeout(120)


def one_port_router(
    start_router: Callable[..., RouterProcess], tmp_path: Path, *extra: str
) -> tuple[RouterProcess, int, Path]:
    cert, key = make_certificate(tmp_path / "cert")
    port = free_port()
    router = start_router(
        "-v", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
        "--no-tls-osc10", "--no-tls-osc11", "--register-timeout", "2", *extra,
    )  # fmt: skip
    wait_until_listening(router.process, [port])
    return router, port, cert


def test_every_kind_of_client_joins_one_group_through_one_port(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, port, cert = one_port_router(start_router, tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    members = {
        "lp": Client(port).join("lp", group),
        "slip": Client(port, Framing.SLIP).join("slip", group),
        "tls": Client(port, sock=tls_socket(port, cert)).join("tls", group),
        "tlsslip": Client(port, Framing.SLIP, sock=tls_socket(port, cert)).join("tlsslip", group),
        "ws": WsClient(f"ws://127.0.0.1:{port}/osc").join("ws", group),
        "wss": WsClient(f"wss://localhost:{port}/osc", ssl=context).join("wss", group),
    }
    time.sleep(0.5)
    for member in members.values():
        member.drain(0.2)
    # python-osc's TCP client, in its default SLIP mode, joins through the same port.
    pythonosc = SimpleTCPClient("127.0.0.1", port, timeout=5)
    pythonosc.send_message("/oscrouter/register", ["pyosc", "pw", group, "gpw", 7])
    replies = [OscMessage(packet).address for packet in pythonosc.receive(timeout=3) if packet]
    assert replies[0] == "/oscrouter/register/pyosc/7"
    pythonosc.send_message("/from", ["pyosc", 1])
    for member in members.values():
        assert member.recv_until("/from").args == ["pyosc", 1]
    pythonosc.close()
    for name, sender in members.items():
        note = msg("/from", name, 60, 0.5)
        sender.send(note)
        for other, receiver in members.items():
            if other != name:
                assert receiver.recv_until("/from").raw == note, (name, other)
    # The pages, plain and over TLS, on the same port.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert answer.read() == b"ok\n"
    with urllib.request.urlopen(
        f"https://localhost:{port}/client/", timeout=5, context=context
    ) as answer:
        assert b"<html" in answer.read().lower()
    log = router.log()
    assert log.count(", TLS)") >= 2  # the two TLS OSC members, logged as on a TLS port


def test_what_no_port_takes_is_refused_as_there_and_silence_is_closed(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, port, _ = one_port_router(start_router, tmp_path)
    player = Client(port).join("player", group)
    player.drain(0.2)
    # Bytes that are no OSC: the error an OSC port gives.
    stray = socket.create_connection(("127.0.0.1", port), timeout=5)
    stray.sendall(b"\x05\x00\x00\x08garbage!")
    answer = stray.recv(4096)
    assert b"/oscrouter/error" in answer or answer == b""
    stray.close()
    # A connection that says nothing is closed after the register timeout.
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    started = time.monotonic()
    assert silent.recv(16) == b""
    assert 1.5 < time.monotonic() - started < 8
    silent.close()
    # A TLS handshake that never ends, a client gone before a word: the player plays on.
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.sendall(b"\x16\x03\x01\x00\x05hello")
    gone = socket.create_connection(("127.0.0.1", port), timeout=5)
    gone.close()
    other = Client(port).join("other", group)
    other.drain(0.2)
    player.send(msg("/still", 1))
    assert other.recv_until("/still").args == [1]
    half.close()
    assert router.process.poll() is None


def test_with_two_workers_the_one_port_still_finds_each_group(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, port, cert = one_port_router(start_router, tmp_path, "--workers", "2")
    time.sleep(1.0)  # both workers listening
    context = ssl.create_default_context(cafile=str(cert))
    members = [
        Client(port).join("a", group),
        Client(port, sock=tls_socket(port, cert)).join("b", group),
        WsClient(f"wss://localhost:{port}/osc", ssl=context).join("c", group),
        Client(port, Framing.SLIP).join("d", group),
    ]
    time.sleep(0.5)
    for member in members:
        member.drain(0.2)
    members[0].send(msg("/all", 1))
    for member in members[1:]:
        assert member.recv_until("/all").args == [1]
    members[2].send(msg("/back", 2))
    for member in (members[0], members[1], members[3]):
        assert member.recv_until("/back").args == [2]
    assert router.process.poll() is None
    # Its supervisor killed outright: no worker is left holding the port.
    router.process.kill()
    router.process.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.2)


def test_connections_that_say_nothing_are_bounded_per_address(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, port, _ = one_port_router(start_router, tmp_path, "--max-unregistered-per-address", "5")
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(12)]
    time.sleep(0.5)
    # The oldest seven made room for the newest five, as on the OSC ports.
    for sock in silent[:7]:
        sock.settimeout(2)
        assert sock.recv(16) == b""
    for sock in silent[7:]:
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(16)  # still open, waiting
    player = Client(port).join("player", group)  # a client that speaks gets in meanwhile
    player.send(msg("/oscrouter/ping"))
    for sock in silent:
        sock.close()
    assert router.process.poll() is None
