"""The asyncio shell around the hub: TCP listeners, connections, shutdown.

Each connection is an `asyncio.Protocol` (not a stream: no task and no queue per connection).
`data_received` hands the bytes to the hub and then writes, in one call per receiver, everything
the hub queued; the same `bytes` object framed once is written to every receiver of a packet.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from dataclasses import dataclass, field
from typing import cast

from .hub import Hub, HubConfig
from .limits import Limits
from .routing import Session, SessionState

__all__ = ["RouterServer", "ServerConfig"]

log = logging.getLogger("tcposcrouter.server")

DEFAULT_OSC10_PORT = 55555
DEFAULT_OSC11_PORT = 55556
# How long a shutdown waits for queued output to reach the clients before it drops them.
SHUTDOWN_GRACE_SECONDS = 5.0
# Connections the kernel may hold completed but not yet accepted. asyncio's default of 100 drops
# the SYNs of a reconnection storm (a whole festival's clients after a router restart), which the
# clients then retry only after a second; the kernel caps this at net.core.somaxconn anyway.
LISTEN_BACKLOG = 4096
# How often timeouts are checked: they are counted in seconds, so once a second is exact enough.
TICK_SECONDS = 1.0
# TCP keepalive: the kernel probes a connection silent for 30 s every 10 s and gives up after 3
# unanswered probes, so a peer that vanished (power cut, Wi-Fi gone) is noticed within about a
# minute even if it held no idle timeout's attention.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


@dataclass(frozen=True)
class ServerConfig:
    hosts: list[str] | None = None  # None: every interface, IPv4 and IPv6
    osc10_port: int | None = DEFAULT_OSC10_PORT  # None: disabled
    osc11_port: int | None = DEFAULT_OSC11_PORT
    limits: Limits = field(default_factory=Limits)
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
            _tune_socket(sock)
        peername = transport.get_extra_info("peername")
        address = str(peername[0]) if isinstance(peername, tuple) else str(peername)
        peer = _format_peer(peername)
        server = self._server
        self.session = self._hub.open_session(peer, address, server.now(), owner=self)
        self.session.write = self.transport.write
        server.connections.add(self)
        limit = server.config.limits.max_output_buffer
        if limit:
            # pause_writing() is called once more than `limit` bytes wait: the slow-consumer
            # check costs nothing on the hot path.
            self.transport.set_write_buffer_limits(high=limit)
        log.info("connect %s (connection %d)", self.session.describe(), self.session.id)

    def data_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        try:
            self._hub.receive(session, data, self._server.now())
        except Exception:
            # A bug, not a peer's fault; it must not take the router or anyone else down.
            log.exception("internal error on %s; dropping that connection", session.describe())
            session.state = SessionState.CLOSING
            if self.transport is not None:
                self.transport.abort()
        self._server.flush()

    def eof_received(self) -> bool:
        return False  # the peer is done sending: close our side too

    def pause_writing(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None:
            return
        self._hub.slow_consumer(session, transport.get_write_buffer_size())
        # Reset rather than close: a plain close leaves the kernel trying to deliver megabytes
        # to a reader that does not read, for minutes; a reset frees them at once.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Not from inside the write that triggered this call: on the next turn of the loop.
        asyncio.get_running_loop().call_soon(transport.abort)

    def resume_writing(self) -> None:
        pass  # a slow consumer has been aborted already; nothing was paused

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


def _tune_socket(sock: socket.socket) -> None:
    # Musicians' messages are small and late is wrong: never wait to fill a segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux has all three; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)


class RouterServer:
    """The whole running router: the hub, its listeners and its connections."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.hub = Hub(HubConfig(limits=config.limits, log_messages=config.log_messages))
        self.connections: set[RouterProtocol] = set()
        self._listeners: list[asyncio.base_events.Server] = []
        self._all_closed: asyncio.Event | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _tick(self) -> None:
        assert self._loop is not None
        self.hub.tick(self._loop.time())
        self.flush()
        self._ticker = self._loop.call_later(TICK_SECONDS, self._tick)

    def flush(self) -> None:
        """Write what the hub queued; close the connections the hub gave up on."""
        for session in self.hub.take_dirty():
            transport = cast(RouterProtocol, session.owner).transport
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
        loop = self._loop = asyncio.get_running_loop()
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
                backlog=LISTEN_BACKLOG,
            )
            self._listeners.append(listener)
            for sock in listener.sockets:
                addresses.append(
                    f"{_format_peer(sock.getsockname())} ({label}; framing auto-detected)"
                )
        self._ticker = loop.call_later(TICK_SECONDS, self._tick)
        return addresses

    async def stop(self) -> None:
        """Stop accepting, flush what is queued to every client, close, wait for them."""
        if self._ticker is not None:
            self._ticker.cancel()
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
