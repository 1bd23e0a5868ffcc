"""The router's listening sockets, accepted a few connections a turn: the OSC ports (plain and
TLS, framing detected from the first byte), opened with the options a public router needs, and
the HTTP port's (server/http/door.py).

The event loop's own servers accept every waiting connection in one go: when a venue's access
point restarts, hundreds of laptops reconnect within milliseconds, and accepting them all (a
transport and a protocol each) holds the loop for tens of milliseconds while a group plays; fifty
dashboards opened at once are fifty WebSocket handshakes in the turn after. A `Listener` accepts
at most its `accepts_per_turn` each time the loop finds its socket readable; the rest wait in the
kernel's backlog for the next turn, and the music is routed in between.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import ssl
from collections.abc import Callable

from ..limits import Limits
from .config import osc_ports
from .running import RunningRouter
from .sockets import format_peer, tune_socket
from .tcp import TcpConnection

__all__ = [
    "ACCEPTS_PER_TURN",
    "HTTP_ACCEPTS_PER_TURN",
    "LISTEN_BACKLOG",
    "Listener",
    "bind",
    "open_osc_ports",
    "serve_accepted",
    "tune_listeners",
]

log = logging.getLogger("tcposcrouter.server")

# Connections the kernel may hold completed but not yet accepted. asyncio's default of 100 drops
# the SYNs of a reconnection storm (a whole festival's clients after a router restart), which the
# clients then retry only after a second; the kernel caps this at net.core.somaxconn anyway.
LISTEN_BACKLOG = 4096
# Connections accepted per listening socket and turn of the loop: about 20 us each (a transport,
# a protocol), so a storm costs a turn at most a third of a millisecond here.
ACCEPTS_PER_TURN = 16
# The HTTP port's: the request an HTTP client sent with its connect is read in the turn after, and
# a WebSocket handshake through aiohttp (a dashboard's, a browser player's) costs about 0.3 ms of
# it, so a few a turn keep a burst of them near a millisecond a turn.
HTTP_ACCEPTS_PER_TURN = 2
# Out of file descriptors (or kernel memory): accepting pauses this long, as asyncio's does.
ACCEPT_RETRY_SECONDS = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


Opening = asyncio.Future[tuple[asyncio.Transport, asyncio.BaseProtocol]]


class Listener:
    """One listening socket: its connections accepted a few a turn, each given the protocol
    `make_protocol` makes (over TLS with `tls`)."""

    def __init__(
        self,
        sock: socket.socket,
        make_protocol: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
        handshake_timeout: float | None,
        accepts_per_turn: int = ACCEPTS_PER_TURN,
    ) -> None:
        self._sock = sock
        self._make_protocol = make_protocol
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._accepts_per_turn = accepts_per_turn
        self.sockets = [sock]
        self._loop = asyncio.get_running_loop()
        self._opening: set[Opening] = set()
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        loop = self._loop
        for _ in range(self._accepts_per_turn):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up before it was accepted
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    raise
                log.warning("cannot accept connections (%s); trying again in 1 s", error)
                loop.remove_reader(self._sock.fileno())
                loop.call_later(ACCEPT_RETRY_SECONDS, self._resume)
                return
            conn.setblocking(False)
            self.take(conn)

    def take(self, conn: socket.socket) -> None:
        """Serve a connection just accepted."""
        opening = serve_accepted(conn, self._make_protocol, self._tls, self._handshake_timeout)
        self._opening.add(opening)  # held until done: the loop keeps weak references
        opening.add_done_callback(self._opening.discard)

    def _resume(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if self._sock.fileno() != -1:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        for opening in self._opening:
            opening.cancel()

    async def wait_closed(self) -> None:
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)


def serve_accepted(
    conn: socket.socket,
    make_protocol: Callable[[], asyncio.BaseProtocol],
    tls: ssl.SSLContext | None,
    handshake_timeout: float | None,
) -> Opening:
    """Give a connection just accepted its transport (over TLS with `tls`) and protocol."""
    opening = asyncio.ensure_future(
        asyncio.get_running_loop().connect_accepted_socket(
            make_protocol, conn, ssl=tls, ssl_handshake_timeout=handshake_timeout
        )
    )
    opening.add_done_callback(_opened)
    return opening


def _opened(opening: Opening) -> None:
    if not opening.cancelled() and opening.exception() is not None:
        # A TLS handshake that failed or never finished: a connection that never was.
        log.debug("a connection could not be opened: %r", opening.exception())


def bind(host: str | None, port: int, reuse_port: bool) -> list[socket.socket]:
    """Listening sockets for `host` (None: every interface, IPv4 and IPv6) and `port`; an error
    says the address as the event loop's own servers do (cli/startup_errors.py reads it)."""
    infos = socket.getaddrinfo(
        host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[object, ...]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as error:
                said = f"error while attempting to bind on address {address!r}: "
                raise OSError(error.errno, said + (error.strerror or "").lower()) from None
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def open_osc_ports(
    router: RunningRouter, tls: ssl.SSLContext | None
) -> tuple[list[Listener], list[str]]:
    """Listen on every OSC port of the router's configuration; return the listeners and, for
    the console, the addresses listened on."""
    config = router.config
    listeners: list[Listener] = []
    addresses: list[str] = []
    try:
        for osc in osc_ports(config):
            label = f"OSC {osc.version} {osc.framing}" + (" over TLS" if osc.tls else "")
            # A handshake that does not finish is a connection that never registers.
            timeout = (config.limits.register_timeout or 10.0) if osc.tls else None
            hosts: list[str | None] = list(config.hosts) if config.hosts else [None]
            for host in hosts:
                for sock in bind(host, osc.port, config.reuse_port):
                    connection = functools.partial(TcpConnection, router)
                    listeners.append(Listener(sock, connection, tls if osc.tls else None, timeout))
                    name = format_peer(sock.getsockname())
                    addresses.append(f"{name} ({label}; framing auto-detected)")
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    tune_listeners(listeners, config.limits)
    return listeners, addresses


def tune_listeners(listeners: list[Listener], limits: Limits) -> None:
    """Set the socket options the listeners' connections inherit (server/sockets.py): at the
    start, and on a reload for the connections to come."""
    for listener in listeners:
        for sock in listener.sockets:
            tune_socket(sock, limits)
