"""`tcposcrouter-client bridge` with real UDP programs (liblo's oscsend and oscdump, python-osc,
plain sockets), a local WebSocket client, and the real router, restarted under it.

Drives bridge/bridge.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pythonosc.tcp_client import SimpleTCPClient
from pythonosc.udp_client import SimpleUDPClient
from websockets.sync.client import connect

from support.client import Client
from support.osc import IMMEDIATELY, bundle, msg, raw_message
from support.peers import PeerProgram, require_program
from support.process import RouterProcess, free_port, wait_until_listening
from tcposcrouter.osc.framing import Framing
from tcposcrouter.osc.messages import time_tag

pytestmark = pytest.mark.timeout(90)


@contextmanager
def bridging(server: str, group: str, *flags: str) -> Iterator[PeerProgram]:
    command = [
        sys.executable, "-m", "tcposcrouter.cli.client", "bridge", "--server", server,
        "--user", "bridge", "--group", group, "--group-password", "gpw", *flags,
    ]  # fmt: skip
    bridge = PeerProgram(command, {**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield bridge
    finally:
        bridge.stop()


def until_bridge_joins(member: Client) -> None:
    while "bridge" not in member.recv_until("/oscrouter/userlist").args:
        pass


def udp_socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock, int(sock.getsockname()[1])


def test_udp_apps_and_tcp_members_hear_each_other_byte_exact(
    router: RouterProcess, group: str
) -> None:
    oscsend = require_program("oscsend")
    oscdump = require_program("oscdump")
    listen_port = free_port()
    receiver, receiver_port = udp_socket()
    dump_port = free_port()
    dump = PeerProgram([oscdump, "-L", str(dump_port)], dict(os.environ))
    lp = Client(router.osc10_port).join("lp", group)
    slip = Client(router.osc11_port, Framing.SLIP).join("slip", group)
    try:
        with bridging(
            f"127.0.0.1:{router.osc10_port}", group,
            "--udp-listen", f"127.0.0.1:{listen_port}",
            "--udp-forward", f"127.0.0.1:{receiver_port}",
            "--udp-forward", f"127.0.0.1:{dump_port}",
        ) as bridge:  # fmt: skip
            bridge.wait_for("joined")
            until_bridge_joins(lp)
            until_bridge_joins(slip)
            # The bridge's user list reached the local apps first.
            assert receiver.recv(65536) == msg("/oscrouter/userlist", "lp", "slip", "bridge")

            # liblo's oscsend → UDP → the group, byte for byte.
            subprocess.run(
                [oscsend, "127.0.0.1", str(listen_port), "/from/liblo", "ifsd", "1", "2.5",
                 "hi", "0.125"], check=True,
            )  # fmt: skip
            expected = raw_message(
                "/from/liblo", ",ifsd",
                (1).to_bytes(4, "big") + bytes.fromhex("40200000") + b"hi\x00\x00"
                + bytes.fromhex("3fc0000000000000"),
            )  # fmt: skip
            assert lp.recv().raw == expected
            assert slip.recv().raw == expected

            # python-osc's UDP client, a message and a bundle.
            python = SimpleUDPClient("127.0.0.1", listen_port)
            python.send_message("/from/python", [3, "x"])
            python.close()
            assert lp.recv().raw == slip.recv().raw == msg("/from/python", 3, "x")
            chord = bundle(time_tag(time.time() + 1), msg("/chord", 60), msg("/chord", 64))
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.sendto(chord, ("127.0.0.1", listen_port))
            sender.close()
            assert slip.recv().raw == lp.recv().raw == chord

            # The group → UDP: both forward addresses, byte for byte, bundles too.
            note = msg("/to/udp", 7, 0.5, "end")
            lp.send(note)
            assert receiver.recv(65536) == note
            dump.wait_for("/to/udp ifs 7 0.5")
            slip.send(chord)
            assert receiver.recv(65536) == chord
            private = msg("/oscrouter/private", "bridge", "/psst", 1)
            lp.send(private)
            assert receiver.recv(65536) == msg("/oscrouter/private", "lp", "/psst", 1)
    finally:
        dump.stop()
        receiver.close()


def test_a_local_websocket_client_through_the_bridge(router: RouterProcess, group: str) -> None:
    ws_port = free_port()
    lp = Client(router.osc10_port).join("lp", group)
    with bridging(
        f"127.0.0.1:{router.osc10_port}", group, "--ws-listen", f"127.0.0.1:{ws_port}"
    ) as bridge:
        bridge.wait_for("joined")
        until_bridge_joins(lp)
        with connect(f"ws://127.0.0.1:{ws_port}/", open_timeout=5) as local:
            # What a page hears first: who is in the group.
            assert local.recv(timeout=5) == msg("/oscrouter/userlist", "lp", "bridge")
            local.send(msg("/s", "bd"))  # what Strudel's OSC output sends
            assert lp.recv().raw == msg("/s", "bd")
            lp.send(msg("/from/lp", 1))
            assert local.recv(timeout=5) == msg("/from/lp", 1)


def _router_on(ports: tuple[int, int], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(ports[0]),
         "--disable-osc11", "--http-port", str(ports[1]), "--log-dir", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until_listening(process, list(ports))
    return process


def test_the_bridge_outlives_the_router(tmp_path: Path, group: str) -> None:
    ports = (free_port(), free_port())
    listen_port = free_port()
    app = SimpleUDPClient("127.0.0.1", listen_port)
    router = _router_on(ports, tmp_path)
    try:
        with bridging(
            f"127.0.0.1:{ports[0]}", group, "--udp-listen", f"127.0.0.1:{listen_port}"
        ) as bridge:
            bridge.wait_for("joined")
            router.terminate()
            assert router.wait(15) == 0
            time.sleep(0.5)
            for _ in range(5):
                app.send_message("/while/away", 1)
            bridge.wait_for("messages from local apps are being lost")
            router = _router_on(ports, tmp_path)
            back = bridge.wait_for("the router is back", timeout=30)
            assert "5 messages from local apps were lost" in back
            member = Client(ports[0]).join("member", group)
            app.send_message("/after", 2)
            assert member.recv_until("/after").raw == msg("/after", 2)
    finally:
        app.close()
        router.terminate()
        router.wait(15)


def test_retime_moves_time_tags_by_the_clock_offset(router: RouterProcess, group: str) -> None:
    listen_port = free_port()
    receiver, receiver_port = udp_socket()
    lp = Client(router.osc10_port).join("lp", group)
    try:
        with bridging(
            f"127.0.0.1:{router.osc10_port}", group, "--retime",
            "--udp-listen", f"127.0.0.1:{listen_port}",
            "--udp-forward", f"127.0.0.1:{receiver_port}",
        ) as bridge:  # fmt: skip
            bridge.wait_for("joined")
            until_bridge_joins(lp)
            receiver.recv(65536)  # the user list
            time.sleep(0.5)  # the first time exchanges
            at = time.time() + 2
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.sendto(bundle(time_tag(at), msg("/n", 1)), ("127.0.0.1", listen_port))
            sender.close()
            got = lp.recv().raw
            # On loopback the router's clock is ours: the tag moves by well under a millisecond.
            moved = int.from_bytes(got[8:16], "big") - int.from_bytes(time_tag(at), "big")
            assert abs(moved) / 2**32 < 0.001
            assert got[16:] == bundle(time_tag(at), msg("/n", 1))[16:]
            now = bundle(IMMEDIATELY, msg("/now"))
            lp.send(now)
            assert receiver.recv(65536) == now  # "immediately" is never moved
    finally:
        receiver.close()


def test_liblo_over_udp_and_python_osc_over_tcp(router: RouterProcess, group: str) -> None:
    """The other side is python-osc's own TCP client (SLIP mode), not the test client."""
    oscsend = require_program("oscsend")
    listen_port = free_port()
    receiver, receiver_port = udp_socket()
    python = SimpleTCPClient("127.0.0.1", router.osc11_port, mode="1.1", timeout=5)  # type: ignore[no-untyped-call]
    try:
        python.send_message("/oscrouter/register", ["py", "pw", group, "gpw", 3])
        with bridging(
            f"127.0.0.1:{router.osc10_port}", group,
            "--udp-listen", f"127.0.0.1:{listen_port}",
            "--udp-forward", f"127.0.0.1:{receiver_port}",
        ) as bridge:  # fmt: skip
            bridge.wait_for("joined")
            assert receiver.recv(65536) == msg("/oscrouter/userlist", "py", "bridge")
            subprocess.run(
                [oscsend, "127.0.0.1", str(listen_port), "/from/liblo", "is", "5", "five"],
                check=True,
            )
            heard: list[bytes] = []
            while not any(p.startswith(b"/from/liblo") for p in heard):
                packets = python.receive(timeout=5)
                assert packets, f"python-osc heard only {heard}"
                heard += packets
            assert [p for p in heard if p.startswith(b"/from/liblo")] == [
                msg("/from/liblo", 5, "five")
            ]
            python.send_message("/from/python/tcp", [2.5, "x"])
            assert receiver.recv(65536) == msg("/from/python/tcp", 2.5, "x")
    finally:
        python.close()  # type: ignore[no-untyped-call]
        receiver.close()
