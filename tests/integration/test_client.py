"""The client library (`tcposcrouter.client`) against the real router process.

Drives client/aio.py and client/blocking.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.client import Client
from support.osc import msg
from support.process import (
    RouterProcess,
    free_port,
    start_router_process,
    wait_until_listening,
)
from tcposcrouter.client import BlockingClient, RegisterRefused, RouterClient
from tcposcrouter.client.protocol import TempoLine, build_message


def servers(router: RouterProcess) -> list[str]:
    return [
        f"127.0.0.1:{router.osc10_port}",
        f"slip://127.0.0.1:{router.osc11_port}",
        f"ws://127.0.0.1:{router.http_port}/osc",
    ]


def test_members_on_every_transport_hear_each_other(router: RouterProcess, group: str) -> None:
    async def scenario() -> None:
        seen: list[list[str]] = []
        tcp, slip, ws = [
            await RouterClient.connect(server, name, "pw", group, "gpw", **options)
            for server, name, options in zip(
                servers(router),
                ["tcp", "slip", "ws"],
                [{"on_users": seen.append}, {}, {}],
                strict=True,
            )
        ]
        try:
            await asyncio.sleep(0.2)
            assert tcp.users == slip.users == ws.users == ["tcp", "slip", "ws"]
            assert seen[-1] == ["tcp", "slip", "ws"]
            await tcp.send("/note", 60, 0.5, "piano", ("d", 0.125), ("h", 2**40))
            for other in (slip, ws):
                packet = await asyncio.wait_for(other.receive(), 5)
                assert packet.raw == build_message(
                    "/note", 60, 0.5, "piano", ("d", 0.125), ("h", 2**40)
                )
            chord = [build_message("/chord", 60), build_message("/chord", 64)]
            await ws.send_bundle(chord, at=time.time() + 1)
            for other in (tcp, slip):
                packet = await asyncio.wait_for(other.receive(), 5)
                assert [m.address for m in packet.bundle()] == ["/chord", "/chord"]
            await slip.private("ws", "/only/you", 1)
            private = await asyncio.wait_for(ws.receive(), 5)
            assert private.private_from == "slip" and private.args == ["slip", "/only/you", 1]
        finally:
            for client in (tcp, slip, ws):
                await client.close()

    asyncio.run(scenario())


def test_a_refused_register_raises_with_the_code(router: RouterProcess, group: str) -> None:
    async def scenario() -> None:
        first = await RouterClient.connect(servers(router)[0], "ana", "right", group, "gpw")
        for server in servers(router):
            with pytest.raises(RegisterRefused) as refused:
                await RouterClient.connect(server, "ana", "wrong", group, "gpw")
            assert refused.value.code == "auth_failed"
        await first.close()
        with pytest.raises(OSError):
            await RouterClient.connect(f"127.0.0.1:{free_port()}", "x", "y", group, "z")

    asyncio.run(scenario())


def test_the_client_knows_the_groups_tempo_and_hears_a_change(
    router: RouterProcess, group: str
) -> None:
    async def scenario() -> None:
        heard: list[TempoLine] = []
        ana = await RouterClient.connect(
            servers(router)[0], "ana", "pw", group, "gpw", on_tempo=heard.append
        )
        bob = await RouterClient.connect(servers(router)[1], "bob", "pw", group, "gpw")
        try:
            for _ in range(100):
                if ana.tempo is not None and bob.tempo is not None:
                    break
                await asyncio.sleep(0.01)
            assert ana.tempo == bob.tempo and ana.tempo is not None
            assert (ana.tempo.bpm, ana.tempo.quantum, ana.tempo.playing) == (120.0, 4, 1)
            await bob.send("/oscrouter/tempo/set", 80.0)
            for _ in range(100):
                if len(heard) == 2:
                    break
                await asyncio.sleep(0.01)
            assert heard[-1].bpm == 80.0 and ana.tempo == heard[-1]
            assert heard[-1].beat_at(heard[-1].t0 + 3.0) == pytest.approx(heard[-1].beat0 + 4)
            with pytest.raises(asyncio.TimeoutError):  # the tempo is not handed on as a packet
                await asyncio.wait_for(ana.receive(), 0.3)
        finally:
            await ana.close()
            await bob.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("skew", [0.0, 0.25, -1.5])
def test_the_clock_estimate_on_loopback(router: RouterProcess, group: str, skew: float) -> None:
    """On loopback the router's clock is ours: the offset is the skew given to our clock."""

    async def scenario() -> None:
        client = await RouterClient.connect(
            servers(router)[0], "timer", "pw", group, "gpw", clock=lambda: time.time() + skew
        )
        try:
            estimate = await client.sync_time(8)
            assert abs(estimate.offset - (-skew)) < 0.001
            assert 0 <= estimate.round_trip < 0.05
        finally:
            await client.close()

    asyncio.run(scenario())


def _start_on(ports: tuple[int, int, int], log: Path) -> subprocess.Popen[bytes]:
    osc, slip, http = ports
    process = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(osc),
         "--osc11-port", str(slip), "--http-port", str(http), "--log-dir", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until_listening(process, list(ports))
    return process


@pytest.mark.timeout(60)
def test_the_client_reconnects_after_the_router_restarts(tmp_path: Path, group: str) -> None:
    ports = (free_port(), free_port(), free_port())

    async def scenario() -> None:
        process = _start_on(ports, tmp_path)
        reconnected = asyncio.Event()
        clients = [
            await RouterClient.connect(
                server, name, "pw", group, "gpw", on_reconnect=reconnected.set
            )
            for server, name in (
                (f"127.0.0.1:{ports[0]}", "tcp"),
                (f"ws://127.0.0.1:{ports[2]}/osc", "ws"),
            )
        ]
        tcp, ws = clients
        try:
            process.terminate()
            assert process.wait(15) == 0
            await asyncio.sleep(0.5)
            assert not tcp.connected
            with pytest.raises(ConnectionError):
                await tcp.send("/lost")
            process = _start_on(ports, tmp_path)
            deadline = time.monotonic() + 20
            # Either may be back first, so the list may come in either order.
            while not (tcp.connected and ws.connected and sorted(ws.users) == ["tcp", "ws"]):
                assert time.monotonic() < deadline, "the clients did not come back"
                await asyncio.sleep(0.1)
            await tcp.send("/back", 1)
            packet = await asyncio.wait_for(ws.receive(), 5)
            assert (packet.address, packet.args) == ("/back", [1])
            assert reconnected.is_set()
        finally:
            for client in clients:
                await client.close()
            process.terminate()
            process.wait(15)

    asyncio.run(scenario())


def test_the_blocking_client_for_scripts(router: RouterProcess, group: str) -> None:
    listener = Client(router.osc10_port).join("listener", group)
    with BlockingClient(f"127.0.0.1:{router.osc10_port}", "script", "pw", group, "gpw") as script:
        assert listener.recv_until("/oscrouter/userlist").args == ["listener", "script"]
        script.send("/from/script", 1, "two")
        assert listener.recv().raw == msg("/from/script", 1, "two")
        listener.send(msg("/to/script", 3.5))
        packet = script.receive(timeout=5)
        assert packet is not None and packet.args == [3.5]
        assert script.receive(timeout=0.1) is None
        assert script.users == ["listener", "script"]
        assert abs(script.sync_time(4).offset) < 0.001


def test_back_to_back_sends_are_not_held_back(router: RouterProcess, group: str) -> None:
    """TCP_NODELAY: the second of two quick sends does not wait for the first's ACK."""
    listener = Client(router.osc10_port).join("listener", group)
    with BlockingClient(f"127.0.0.1:{router.osc10_port}", "quick", "pw", group, "gpw") as quick:
        listener.recv_until("/oscrouter/userlist")
        gaps = []
        for _ in range(10):
            quick.send("/a")
            quick.send("/b")
            listener.recv()
            start = time.monotonic()
            listener.recv()
            gaps.append(time.monotonic() - start)
        assert sorted(gaps)[5] < 0.02  # Nagle would make it about 40 ms


def test_the_client_pings(start_router: Callable[..., RouterProcess], group: str) -> None:
    """Pings keep NATs and proxies from forgetting a quiet member; the router counts them as
    packets in and tells nobody."""
    router = start_router()
    watcher = Client(router.osc10_port).join("watcher", group)

    def packets_in() -> float:
        text = urllib.request.urlopen(f"{router.http}/metrics", timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "tcposcrouter_packets_in":
                return float(family.samples[0].value)
        raise AssertionError("no packets_in metric")

    async def scenario() -> None:
        client = await RouterClient.connect(
            f"127.0.0.1:{router.osc10_port}", "quiet", "pw", group, "gpw", ping_seconds=0.1
        )
        before = packets_in()
        await asyncio.sleep(0.75)
        assert packets_in() - before >= 4
        await client.close()

    asyncio.run(scenario())
    assert [p.address for p in watcher.drain()] == ["/oscrouter/userlist"] * 2  # join, leave


class CuttableProxy:
    """A TCP relay to the router whose connections the test can cut, as a Wi-Fi drop does."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer),
                             return_exceptions=True)  # fmt: skip

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()  # a reset both ways
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_the_client_resumes_its_place_after_a_drop_with_nothing_lost(
    router: RouterProcess, group: str
) -> None:
    async def scenario() -> None:
        proxy = CuttableProxy(router.osc10_port)
        through = await proxy.start()
        watcher = Client(router.osc10_port).join("watcher", group)
        ana = await RouterClient.connect(
            f"{through},127.0.0.1:{router.osc10_port}", "ana", "pw", group, "gpw"
        )
        bob = await RouterClient.connect(servers(router)[0], "bob", "pw", group, "gpw")
        try:
            await bob.send("/ready")  # after ana's session request: its reply has come first
            assert (await asyncio.wait_for(ana.receive(), 5)).address == "/ready"
            assert ana.session_token
            got: list[int] = []
            for n in range(200):
                await bob.send("/note", n)
                if n == 100:
                    proxy.cut()  # mid-stream: some of it is in flight
                await asyncio.sleep(0.005)
            while len(got) < 200:  # (a /ready was received before)
                packet = await asyncio.wait_for(ana.receive(), 10)
                got.append(packet.args[0])
            assert got == list(range(200))  # in order, none twice, none lost
            assert ana.resumed and ana.server == through  # back where its place was kept
            lists = [p.args for p in watcher.drain(0.3) if p.address == "/oscrouter/userlist"]
            assert all("ana" in names for names in lists)  # nobody saw ana leave
        finally:
            await ana.close()
            await bob.close()
            await proxy.close()

    asyncio.run(scenario())


def test_a_client_whose_router_is_gone_fails_over_to_the_next_and_registers_there(
    tmp_path: Path, group: str
) -> None:
    async def scenario(first: RouterProcess, second: RouterProcess) -> None:
        listed = f"127.0.0.1:{first.osc10_port},127.0.0.1:{second.osc10_port}"
        ana = await RouterClient.connect(listed, "ana", "pw", group, "gpw")
        try:
            first.stop()
            for _ in range(300):
                if ana.connected and ana.server.endswith(str(second.osc10_port)):
                    break
                await asyncio.sleep(0.02)
            assert ana.connected and not ana.resumed  # a new router: registered anew
            watcher = Client(second.osc10_port).join("watcher", group)
            await ana.send("/hello", 1)
            assert watcher.recv_until("/hello").args == [1]
        finally:
            await ana.close()

    first = start_router_process(tmp_path / "first")
    second = start_router_process(tmp_path / "second")
    try:
        asyncio.run(scenario(first, second))
    finally:
        second.stop()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for `condition`, polling (what the client sets has no event of its own)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


def test_the_clients_keep_the_state_and_agree_on_the_beat(
    router: RouterProcess, group: str
) -> None:
    async def scenario() -> None:
        ana = await RouterClient.connect(servers(router)[0], "ana", "pw", group, "gpw")
        bob = await RouterClient.connect(servers(router)[2], "bob", "pw", group, "gpw")
        try:
            await ana.set_state("/fader", 0.5)
            await ana.set_state("/scene", "intro")
            heard = await asyncio.wait_for(bob.receive(), 5)  # handed on as the message itself
            assert heard.raw == msg("/fader", 0.5)
            await asyncio.wait_for(bob.receive(), 5)
            # Sets that came before bob's follow took effect reach its mapping with the whole
            # state it asks for then: a moment later.
            await until(lambda: len(bob.state) == 2)
            assert {a: p.raw for a, p in bob.state.items()} == {
                "/fader": msg("/fader", 0.5), "/scene": msg("/scene", "intro"),
            }  # fmt: skip
            await ana.clear_state("/fader")
            cy = await RouterClient.connect(servers(router)[1], "cy", "pw", group, "gpw")
            try:
                await asyncio.wait_for(cy.state_told.wait(), 5)
                assert list(cy.state) == ["/scene"]
                assert (await asyncio.wait_for(cy.receive(), 5)).raw == msg("/scene", "intro")
                await until(lambda: "/fader" not in bob.state)  # bob's copy follows the clear
                assert list(bob.state) == ["/scene"]
            finally:
                await cy.close()
            await ana.sync_time()
            await bob.sync_time()
            await ana.set_tempo(90.0, ana.next_bar())
            for _ in range(200):
                if bob.tempo is not None and bob.tempo.bpm == 90.0:
                    break
                await asyncio.sleep(0.01)
            assert abs(ana.beat() - bob.beat()) < 0.01  # within 5 ms at 120 bpm, on loopback
            assert bob.time_of(bob.next_bar()) == pytest.approx(
                ana.time_of(ana.next_bar()), abs=0.005
            )
        finally:
            await ana.close()
            await bob.close()

    asyncio.run(scenario())
