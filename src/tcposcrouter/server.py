"""The asyncio shell around the hub: TCP listeners, connections, shutdown.

Each connection is an `asyncio.Protocol` (not a stream: no task and no queue per connection).
`data_received` hands the bytes to the hub and then writes, in one call per receiver, everything
the hub queued; the same `bytes` object framed once is written to every receiver of a packet.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import cast

from .framing import DEFAULT_MAX_PACKET_SIZE
from .hub import Hub, HubConfig
from .routing import Session, SessionState

__all__ = ["RouterServer", "ServerConfig"]

log = logging.getLogger("tcposcrouter.server")

DEFAULT_OSC10_PORT = 55555
DEFAULT_OSC11_PORT = 55556
# How long a shutdown waits for queued output to reach the clients before it drops them.
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ServerConfig:
    hosts: list[str] | None = None  # None: every interface, IPv4 and IPv6
    osc10_port: int | None = DEFAULT_OSC10_PORT  # None: disabled
    osc11_port: int | None = DEFAULT_OSC11_PORT
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    log_messages: bool = False


class RouterProtocol(asyncio.Protocol):
    """One client connection. Every decision is the hub's; this only moves bytes."""

    def __init__(self, server: RouterServer) -> None:
        self._server = server
        self._hub = server.hub
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Musicians' messages are small and late is wrong: never wait to fill a segment.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = _format_peer(transport.get_extra_info("peername"))
        self.session = self._hub.open_session(peer, owner=self)
        self._server.connections.add(self)
        log.info("connect [%s] (connection %d)", peer, self.session.id)

    def data_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        self._hub.receive(session, data)
        self._server.flush()

    def eof_received(self) -> bool:
        return False  # the peer is done sending: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        session = self.session
        if session is None:
            return
        if exc is not None:
            log.info("connection %s lost: %s", session.describe(), exc)
        self._hub.close_session(session)
        self._server.flush()
        self._server.connection_closed()


def _format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)


class RouterServer:
    """The whole running router: the hub, its listeners and its connections."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.hub = Hub(
            HubConfig(max_packet_size=config.max_packet_size, log_messages=config.log_messages)
        )
        self.connections: set[RouterProtocol] = set()
        self._listeners: list[asyncio.base_events.Server] = []
        self._all_closed: asyncio.Event | None = None

    def flush(self) -> None:
        """Write what the hub queued; close the connections the hub gave up on."""
        for session in self.hub.take_dirty():
            protocol = cast(RouterProtocol, session.owner)
            transport = protocol.transport
            if transport is None or transport.is_closing():
                session.output.clear()
                continue
            if session.output:
                transport.write(session.take_output())
            if session.state is SessionState.CLOSING:
                transport.close()  # sends what is buffered first, then closes

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    async def start(self) -> list[str]:
        """Open the listeners; return the addresses listened on, for the console."""
        loop = asyncio.get_running_loop()
        addresses: list[str] = []
        ports = [
            (port, label)
            for port, label in (
                (self.config.osc10_port, "OSC 1.0 length prefix"),
                (self.config.osc11_port, "OSC 1.1 SLIP"),
            )
            if port is not None
        ]
        for port, label in ports:
            listener = await loop.create_server(
                lambda: RouterProtocol(self),
                host=self.config.hosts,
                port=port,
                reuse_address=True,
            )
            self._listeners.append(listener)
            for sock in listener.sockets:
                addresses.append(
                    f"{_format_peer(sock.getsockname())} ({label}; framing auto-detected)"
                )
        return addresses

    async def stop(self) -> None:
        """Stop accepting, flush what is queued to every client, close, wait for them."""
        for listener in self._listeners:
            listener.close()
        self.flush()
        if self.connections:
            self._all_closed = asyncio.Event()
            for protocol in list(self.connections):
                if protocol.transport is not None:
                    protocol.transport.close()  # writes what is buffered, then closes
            try:
                await asyncio.wait_for(self._all_closed.wait(), SHUTDOWN_GRACE_SECONDS)
            except asyncio.TimeoutError:
                log.warning(
                    "%d connections still had output after %.0f s; dropping them",
                    len(self.connections),
                    SHUTDOWN_GRACE_SECONDS,
                )
                for protocol in list(self.connections):
                    if protocol.transport is not None:
                        protocol.transport.abort()
        # Since Python 3.12 this also waits for the connections, hence only after closing them.
        for listener in self._listeners:
            await listener.wait_closed()
