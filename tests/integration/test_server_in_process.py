"""The asyncio shell in this process, over real loopback sockets: the flush per loop turn and the
server's statistics.

Drives server/app.py, server/connection.py and server/tcp.py."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

from support.osc import msg, register
from support.process import free_port
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder, frame
from tcposcrouter.server.app import RouterServer
from tcposcrouter.server.config import ServerConfig

LP = Framing.LENGTH_PREFIX


async def joined(
    port: int, user: str, group: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(register(user, group), LP))
    decoder = LengthPrefixDecoder()
    while True:
        packets = decoder.feed(await reader.read(65536))
        if any(isinstance(p, bytes) and p.startswith(b"/oscrouter/userlist") for p in packets):
            return reader, writer


async def read_packets(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    decoder = LengthPrefixDecoder()
    packets: list[bytes] = []
    while len(packets) < count:
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, "closed by the router"
        packets += [p for p in decoder.feed(data) if isinstance(p, bytes)]
    return packets


def test_statistics_of_a_running_server() -> None:
    async def scenario() -> None:
        port = free_port()
        server = RouterServer(
            ServerConfig(
                hosts=["127.0.0.1"],
                osc10_port=port,
                osc11_port=None,
                http_port=None,
                limits=Limits(),
            )
        )
        await server.start()
        try:
            _, ana = await joined(port, "ana", "band")
            bob_reader, bob = await joined(port, "bob", "band")
            await asyncio.sleep(0.05)  # ana's user list for bob's join
            before = server.statistics()
            notes = [msg("/note", i) for i in range(100)]
            ana.write(b"".join(frame(n, LP) for n in notes))  # one write: one read, one run
            assert await read_packets(bob_reader, 100) == notes
            after = server.statistics()
            assert after.hub.connections == 2
            assert after.hub.connections_by_framing == {"length-prefix": 2}
            assert after.hub.deliveries - before.hub.deliveries == 100
            sent = sum(len(frame(n, LP)) for n in notes)
            assert after.hub.bytes_out - before.hub.bytes_out == sent
            # However the router read the 100 notes, bob got far fewer writes than notes.
            assert after.hub.writes - before.hub.writes < 100
            assert after.flushes > before.flushes and after.internal_errors == 0
            assert after.uptime_seconds > 0
            ana.close()
            bob.close()
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_every_connection_has_the_keepalive_and_timeout_of_the_limits_even_after_a_reload() -> None:
    """Set once on the listener and inherited (server/sockets.py): what finds a vanished peer
    within peer_timeout."""

    def options(server: RouterServer, user: str) -> tuple[int, int, int, int]:
        (connection,) = [
            c for c in server.connections if c.session and c.session.describe().startswith(user)
        ]
        sock = connection.socket()
        assert sock is not None
        return (
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        )

    async def scenario() -> None:
        port = free_port()
        config = ServerConfig(
            hosts=["127.0.0.1"],
            osc10_port=port,
            osc11_port=None,
            http_port=None,
            limits=Limits(peer_timeout=40.0),
        )
        server = RouterServer(config)
        await server.start()
        try:
            _, ana = await joined(port, "ana", "band")
            assert options(server, "ana") == (1, 1, 10, 40_000)
            server.reload(dataclasses.replace(config, limits=Limits(peer_timeout=8.0)))
            _, bob = await joined(port, "bob", "band")
            assert options(server, "ana") == (1, 1, 10, 40_000)  # as it was when ana came
            assert options(server, "bob") == (1, 1, 2, 8_000)
            ana.close()
            bob.close()
        finally:
            await server.stop()

    asyncio.run(scenario())
