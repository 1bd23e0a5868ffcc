"""One port for every kind of client (`--port`, docs/operating.md "One port for every client").

Campus and venue networks often let nothing out but port 443, and sclang and Pd speak only plain
TCP, so the router can take every client on one listening port: it looks at what each
connection says first (osc/first_bytes.py) and serves it as the port for that would.

* OSC over TCP, length prefix or SLIP (sclang, Pd, python-osc, liblo): a `TcpConnection`, as on
  the OSC ports.
* HTTP (a WebSocket to /osc, the dashboard, the browser client, /metrics): an `HttpDoor` in
  front of the HTTP port's application, as on the HTTP port.
* TLS (with a certificate): the handshake is made first, then the first bytes inside it tell an
  HTTPS request from OSC over TLS, each served as above. Without a certificate, a TLS client is
  closed, as at a plain OSC port.

The first bytes are looked at without taking them (`MSG_PEEK`) before the connection gets its
transport, so that a TLS handshake can still read its ClientHello; a connection that says
nothing within the register timeout is closed, and while it waits it counts as the OSC ports
count a connection not registered yet: past `--max-unregistered-per-address` from one address
the oldest is closed to make room, and past `--max-connections` waiting in all a new one is
closed at once. Nothing else differs from the other ports: the same limits, the same hub, the
same moves to a group's worker with `--workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable

from ..osc.first_bytes import Speaks, first_bytes_speak
from .config import ServerConfig
from .listeners import Listener, bind, serve_accepted, tune_listeners
from .running import RunningRouter
from .sockets import format_peer, peer_host
from .tcp import TcpConnection
from .wrong_port import on_osc_port

__all__ = ["FIRST_BYTES", "OnePort", "served_as"]

log = logging.getLogger("tcposcrouter.server")

# Bytes looked at: the first tells every kind apart (osc/first_bytes.py).
FIRST_BYTES = 1

MakeHttp = Callable[[], asyncio.Protocol | None]


class _FirstBytesListener(Listener):
    """A listening socket whose connections go to `OnePort` as sockets, before any transport."""

    def __init__(self, sock: socket.socket, take: Callable[[socket.socket], None]) -> None:
        super().__init__(sock, asyncio.Protocol, None, None)
        self._take = take

    def take(self, conn: socket.socket) -> None:
        self._take(conn)


def served_as(first: bytes, tls: bool) -> str:
    """How a connection that starts with `first` is served: "tls" (its handshake first),
    "http", or "osc" (an OSC connection, which also refuses what is neither; inside TLS, a
    second TLS is that too)."""
    speaks = first_bytes_speak(first)
    if speaks is Speaks.TLS and not tls:
        return "tls"
    if speaks is Speaks.HTTP:
        return "http"
    return "osc"


class _InsideTls(asyncio.Protocol):
    """A TLS connection at the one port, its handshake done: its first bytes choose what serves
    it, which then takes the transport over with those bytes."""

    def __init__(self, make_osc: Callable[[], asyncio.Protocol], make_http: MakeHttp) -> None:
        self._make_osc = make_osc
        self._make_http = make_http
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        chosen = self._make_http() if served_as(data, True) == "http" else self._make_osc()
        if chosen is None:  # HTTPS, and this router has no HTTP side
            transport.close()
            return
        transport.set_protocol(chosen)
        chosen.connection_made(transport)
        chosen.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class OnePort:
    """The one port's listening sockets, and the look at each connection's first bytes."""

    def __init__(
        self, router: RunningRouter, tls: ssl.SSLContext | None, make_http: MakeHttp
    ) -> None:
        self._router = router
        self._tls = tls
        self._make_http = make_http
        self.listeners: list[Listener] = []
        self._looking: dict[int, tuple[socket.socket, asyncio.TimerHandle, str]] = {}
        self._by_address: dict[str, deque[socket.socket]] = {}  # waiting, oldest first
        self._opening: set[asyncio.Future[tuple[asyncio.Transport, asyncio.BaseProtocol]]] = set()

    def open(self, config: ServerConfig, port: int) -> list[str]:
        """Listen on `port` of every host of `config`; return the addresses, for the console."""
        hosts: list[str | None] = list(config.hosts) if config.hosts else [None]
        addresses: list[str] = []
        try:
            for host in hosts:
                for sock in bind(host, port, config.reuse_port):
                    self.listeners.append(_FirstBytesListener(sock, self._accepted))
                    addresses.append(format_peer(sock.getsockname()))
        except BaseException:
            self.close()
            raise
        tune_listeners(self.listeners, config.limits)
        return addresses

    def _accepted(self, sock: socket.socket) -> None:
        """A new connection: wait for its first bytes."""
        limits = self._router.config.limits
        if limits.max_connections and len(self._looking) >= limits.max_connections:
            sock.close()  # the port is full of connections that say nothing
            return
        address = _host(sock)
        waiting = self._by_address.setdefault(address, deque())
        if limits.max_unregistered_per_address and (
            len(waiting) >= limits.max_unregistered_per_address
        ):
            self._silent(waiting[0])  # the oldest from that address makes room
        waiting.append(sock)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(limits.register_timeout or 10.0, self._silent, sock)
        self._looking[sock.fileno()] = (sock, timer, address)
        loop.add_reader(sock.fileno(), self._readable, sock)

    def _stop_looking(self, sock: socket.socket) -> None:
        looking = self._looking.pop(sock.fileno(), None)
        if looking is None:
            return
        looking[1].cancel()
        asyncio.get_running_loop().remove_reader(sock.fileno())
        waiting = self._by_address.get(looking[2])
        if waiting is not None:
            waiting.remove(sock)
            if not waiting:
                del self._by_address[looking[2]]

    def _silent(self, sock: socket.socket) -> None:
        """Nothing said within the register timeout: closed, as an OSC port would."""
        self._stop_looking(sock)
        with contextlib.suppress(OSError):
            log.debug("[%s] said nothing at the one port; closed", format_peer(sock.getpeername()))
        sock.close()

    def _readable(self, sock: socket.socket) -> None:
        try:
            first = sock.recv(FIRST_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        self._stop_looking(sock)
        if not first:  # closed, or reset, before a word
            sock.close()
            return
        kind = served_as(first, False)
        router = self._router
        make_osc = functools.partial(TcpConnection, router)
        if kind == "tls":
            if self._tls is None:
                log.info(
                    "[%s] TLS at the one port, which has no certificate (--tls-cert); closed",
                    _peer(sock),
                )
                sock.close()
                return
            timeout = router.config.limits.register_timeout or 10.0
            inside = functools.partial(_InsideTls, make_osc, self._make_http)
            self._serve(sock, inside, self._tls, timeout)
        elif kind == "http":
            if not self._open_http(sock):
                self._no_http(sock)
        else:
            self._serve(sock, make_osc, None, None)

    def _open_http(self, sock: socket.socket) -> bool:
        door = self._make_http()
        if door is None:
            return False
        self._serve(sock, lambda: door, None, None)
        return True

    def _no_http(self, sock: socket.socket) -> None:
        """HTTP at the one port of a router without its HTTP side: told so, and closed."""
        try:
            request = sock.recv(4096)
        except OSError:
            request = b""
        local = peer_host(sock.getsockname()) or "127.0.0.1"
        wrong = on_osc_port(request or b"GET", self._router.config, local)
        if wrong is not None and wrong.answer:
            with contextlib.suppress(OSError):
                sock.send(wrong.answer)
        sock.close()

    def _serve(
        self,
        sock: socket.socket,
        make: Callable[[], asyncio.BaseProtocol],
        tls: ssl.SSLContext | None,
        handshake_timeout: float | None,
    ) -> None:
        opening = serve_accepted(sock, make, tls, handshake_timeout)
        self._opening.add(opening)  # held until done: the loop keeps weak references
        opening.add_done_callback(self._opening.discard)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for sock, timer, _ in list(self._looking.values()):
            timer.cancel()
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        self._looking.clear()
        self._by_address.clear()
        for opening in self._opening:
            opening.cancel()

    async def wait_closed(self) -> None:
        for listener in self.listeners:
            await listener.wait_closed()


def _host(sock: socket.socket) -> str:
    try:
        return peer_host(sock.getpeername()) or "?"
    except OSError:
        return "?"


def _peer(sock: socket.socket) -> str:
    try:
        return format_peer(sock.getpeername())
    except OSError:
        return "a client gone"
