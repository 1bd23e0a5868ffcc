"""One TCP connection: an `asyncio.Protocol` that feeds the hub and is the hub's `Sink`.

Every decision is the hub's. This class only moves bytes: what it reads goes to `Hub.receive`,
and what the hub's outbox writes, closes or resets arrives through `write`, `close` and `abort`.
When the hub says to stop reading for a while (a spent rate budget, a register being checked),
it pauses the transport: the kernel's receive buffer fills, and TCP slows the sender down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..core.hub import WAIT_FOR_CHECK
from ..core.login import PasswordCheck
from ..core.session import Session, SessionState
from ..limits import Limits

if TYPE_CHECKING:
    from .app import RouterServer

__all__ = ["TcpConnection", "format_peer"]

log = logging.getLogger("tcposcrouter.server")

# Unanswered keepalive probes after which the kernel gives a silent peer up.
KEEPALIVE_COUNT = 3


class TcpConnection(asyncio.Protocol):
    # Sink.write is the transport's own write, bound once the connection is made: the outbox
    # calls it for every busy receiver, and a Python method in between would be one more frame
    # per write on the hot path (it raises RuntimeError once uvloop has closed the transport,
    # which the outbox takes as the connection being gone).
    write: Callable[[bytes], None]
    # No instance dict: a public router holds thousands of these.
    __slots__ = (
        "_checking",
        "_deferred",
        "_hub",
        "_rate_timer",
        "_server",
        "_transport",
        "session",
        "write",
    )

    def __init__(self, server: RouterServer) -> None:
        self._server = server
        self._hub = server.hub
        self._transport: asyncio.Transport | None = None
        self.session: Session | None = None
        # Reading is paused while a register is checked, or until `_rate_timer` fires for a
        # spent rate budget, or while a read waits in RouterServer.defer; it resumes when none
        # holds.
        self._checking = False
        self._deferred = 0  # reads waiting in RouterServer.defer: reading stays paused till 0
        self._rate_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol: the kernel's side ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The event loop accepts every waiting connection in one turn; a thousand at once would
        # hold up the music for tens of milliseconds. So a connection is set up on a later turn,
        # in chunks (RouterServer.defer), and reads nothing until then.
        self._transport = transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        transport.pause_reading()
        self._server.defer(self._open)

    def _open(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _tune_socket(sock, self._server.config.limits)
        peername = transport.get_extra_info("peername")
        # Interned: every connection from one address (a classroom's NAT) shares one string.
        address = sys.intern(str(peername[0]) if isinstance(peername, tuple) else str(peername))
        server = self._server
        self.write = transport.write
        self.session = session = self._hub.open(format_peer(peername), address, server.now(), self)
        limit = server.config.limits.max_output_buffer
        if limit:
            # pause_writing() is called once more than `limit` bytes wait in the transport: the
            # slow-consumer check costs nothing on the hot path.
            transport.set_write_buffer_limits(high=limit)
        secure = ", TLS" if transport.get_extra_info("sslcontext") is not None else ""
        log.info("connect %s (connection %d%s)", session.describe(), session.id, secure)
        if not self._deferred:
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.state is SessionState.NEW or self._deferred:
            # Not set up yet (bytes that came with the connection), or a register most likely:
            # handled on a later turn too, after what came before it.
            if self._transport is not None:
                self._transport.pause_reading()
            self._deferred += 1
            self._server.defer(functools.partial(self._receive_deferred, data))
            return
        self.receive_now(data)

    def _receive_deferred(self, data: bytes) -> None:
        self._deferred -= 1
        if self.session is None:
            return  # it was gone before it could be set up
        if not self.receive_now(data) and not self._deferred:
            self._resume()

    def receive_now(self, data: bytes) -> float:
        """Hand `data` to the hub and carry out what it says about reading; return that."""
        session = self.session
        assert session is not None
        server = self._server
        try:
            pause = self._hub.receive(session, data, server.now())
        except Exception:
            server.hub_failed(self, session)
            pause = 0.0
        if pause:
            self._pause(pause)
        server.output_ready()
        server.checks_ready()
        return pause

    # -- reading paused and resumed ---------------------------------------------------------

    def _pause(self, pause: float) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if pause == WAIT_FOR_CHECK:
            self._checking = True
        else:
            loop = asyncio.get_running_loop()
            resume_at = loop.time() + pause
            timer = self._rate_timer
            if timer is None or resume_at > timer.when():  # one timer, for the latest time
                if timer is not None:
                    timer.cancel()
                self._rate_timer = loop.call_at(resume_at, self._rate_paid)
        if transport.is_reading():
            transport.pause_reading()

    def _rate_paid(self) -> None:
        self._rate_timer = None
        self._resume()

    def _resume(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._checking or self._rate_timer is not None or self._deferred:
            return  # still waiting for another reason
        if not transport.is_reading():
            transport.resume_reading()

    def password_checked(self, check: PasswordCheck) -> None:
        """The worker thread has run `check` (called on the event loop)."""
        server = self._server
        self._checking = False
        try:
            pause = self._hub.password_checked(check, server.now())
        except Exception:
            server.hub_failed(self, check.session)
            pause = 0.0
        if pause:
            self._pause(pause)
        else:
            self._resume()
        server.output_ready()
        server.checks_ready()

    def eof_received(self) -> bool:
        return False  # the peer is done sending: close our side too

    def pause_writing(self) -> None:
        # Called from inside a write, while the hub flushes: tell the hub on a turn of its own
        # (a Sink must not call back into the hub).
        asyncio.get_running_loop().call_soon(self._report_slow_consumer)

    def _report_slow_consumer(self) -> None:
        session, transport = self.session, self._transport
        if session is not None and transport is not None:
            self._hub.slow_consumer(session, transport.get_write_buffer_size())
            self._server.output_ready()

    def resume_writing(self) -> None:
        pass  # a slow consumer is reset, never left paused

    def connection_lost(self, exc: Exception | None) -> None:
        server = self._server
        server.connections.discard(self)
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        session = self.session
        if session is None:  # gone before it was set up
            server.connection_closed()
            return
        if exc is not None:
            log.info("connection %s lost: %s", session.describe(), exc)
        self._hub.close(session)
        server.output_ready()
        server.connection_closed()

    # -- Sink: the hub's side (write: see the class attribute) ---------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()  # sends what is buffered first, then closes

    def abort(self) -> None:
        transport = self._transport
        if transport is None:
            return
        # Reset rather than close: a plain close leaves the kernel trying to deliver megabytes
        # to a reader that does not read, for minutes; a reset frees them at once.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


def _tune_socket(sock: socket.socket, limits: Limits) -> None:
    # Musicians' messages are small and late is wrong: never wait to fill a segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A peer that vanished (no FIN, no RST) is found by the kernel, within `peer_timeout`:
    # keepalive probes find it while nothing is being sent, and TCP_USER_TIMEOUT while data
    # waits unacknowledged (keepalive sends no probe then, and retransmission alone would
    # take a quarter of an hour). A listener that never sends is kept: its kernel answers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    timeout = limits.peer_timeout
    if not timeout:
        return
    probe_every = max(1, math.ceil(timeout / (KEEPALIVE_COUNT + 1)))
    for option, value in (
        ("TCP_KEEPIDLE", probe_every),
        ("TCP_KEEPINTVL", probe_every),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", math.ceil(timeout * 1000)),
    ):
        if hasattr(socket, option):  # Linux has all four; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)
