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
import socket
import sys
from collections.abc import Callable
from typing import cast

from ..core.hub import WAIT_FOR_CHECK
from ..core.register import PasswordCheck
from ..core.session import SessionState
from ..errors import ErrorCode
from .connection import HubConnection
from .relay import Relayed
from .running import RunningRouter
from .sockets import ACCEPTED_INHERIT_OPTIONS, format_peer, peer_host, reset, tune_socket
from .to_owner import FirstPacket, move_to_owner, stream_mover
from .wrong_port import on_osc_port

__all__ = ["TcpConnection"]

log = logging.getLogger("tcposcrouter.server")


class TcpConnection(HubConnection, asyncio.Protocol):
    # Sink.write is the transport's own write, bound once the connection is made: the outbox
    # calls it for every busy receiver, and a Python method in between would be one more frame
    # per write on the hot path (it raises RuntimeError once uvloop has closed the transport,
    # which the outbox takes as the connection being gone).
    write: Callable[[bytes], None]
    # No instance dict: a public router holds thousands of these.
    __slots__ = (
        "_checking",
        "_deferred",
        "_first",
        "_rate_timer",
        "_relayed",
        "_transport",
        "write",
    )

    def __init__(
        self, router: RunningRouter, *, handed_in: bool = False, relayed: Relayed | None = None
    ) -> None:
        """`handed_in`: another worker accepted it and handed it here (server/handoff.py);
        `relayed`: that worker relays it, and this is who it is (server/relay.py)."""
        super().__init__(router)
        self._relayed = relayed
        self._transport: asyncio.Transport | None = None
        # Reading is paused while a register is checked, or until `_rate_timer` fires for a
        # spent rate budget, or while a read waits in RouterServer.defer; it resumes when none
        # holds.
        self._checking = False
        self._deferred = 0  # reads waiting in RouterServer.defer: reading stays paused till 0
        self._rate_timer: asyncio.TimerHandle | None = None
        # With --workers: what has been read before the first packet was whole, to move the
        # connection to the worker that owns its group (None: it stays here, whatever it is).
        self._first: FirstPacket | None = None
        if router.handoff is not None and not handed_in and relayed is None:
            self._first = FirstPacket()

    # -- asyncio.Protocol: the kernel's side ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The event loop accepts every waiting connection in one turn; a thousand at once would
        # hold up the music for tens of milliseconds. So a connection is set up on a later turn,
        # in chunks (RouterServer.defer), and reads nothing until then.
        self._transport = transport = cast(asyncio.Transport, transport)
        self._router.connections.add(self)
        transport.pause_reading()
        self._router.defer(self._open)

    def _open(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        limits = self._router.config.limits
        if not ACCEPTED_INHERIT_OPTIONS:  # else it has its listener's (sockets.py)
            tune_socket(transport.get_extra_info("socket"), limits)
        relayed = self._relayed
        if relayed is None:
            peername = transport.get_extra_info("peername")
            peer, address = format_peer(peername), peer_host(peername) or str(peername)
            secure = ", TLS" if transport.get_extra_info("sslcontext") is not None else ""
        else:
            peer, address = relayed.peer, relayed.address
            secure = f", {relayed.transport} relayed by another worker"
        self.write = transport.write
        # Interned: every connection from one address (a classroom's NAT) shares one string.
        session = self.open_session(peer, sys.intern(address))
        if limits.max_output_buffer:
            # pause_writing() is called once more than `limit` bytes wait in the transport: the
            # slow-consumer check costs nothing on the hot path.
            transport.set_write_buffer_limits(high=limits.max_output_buffer)
        log.info("connect %s (connection %d%s)", session.describe(), session.id, secure)
        if not self._deferred:
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.state is not SessionState.REGISTERED or self._deferred:
            # Not set up yet (bytes that came with the connection), or not a member yet (a
            # register most likely): handled on a later turn too, after what came before it.
            if self._transport is not None:
                self._transport.pause_reading()
            self._deferred += 1
            self._router.defer(functools.partial(self._receive_deferred, data))
            return
        pause = self.hub_receive(session, data)
        if pause:
            self._pause(pause)

    def _receive_deferred(self, data: bytes) -> None:
        self._deferred -= 1
        session = self.session
        if session is None:
            return  # it was gone before it could be set up
        if session.framing is None and self._at_wrong_port(data):
            return
        first = self._first
        if first is not None:  # --workers: is it this worker's? (server/to_owner.py)
            read = first.add(data)
            if read is None:  # the first packet is not all here yet
                if not self._deferred:
                    self._resume()
                return
            data, group, asking = read
            if not asking:  # else the info requests are answered, and the register awaited
                self._first = None
            if group is not None and self._to_owner(group, data):
                return
        pause = self.hub_receive(session, data)
        if pause:
            self._pause(pause)
        elif not self._deferred:
            self._resume()

    def _to_owner(self, group: str, held: bytes) -> bool:
        """With --workers: moved to its group's worker, or waiting for it (still paused)."""
        transport, session = self._transport, self.session
        if transport is None or session is None or transport.is_closing():
            return True  # gone meanwhile
        relayed_as = Relayed(session.peer, session.address, "TLS")
        move = stream_mover(self._router, transport, relayed_as, held)
        return move_to_owner(self._router, self, group, move, lambda: not transport.is_closing())

    def _at_wrong_port(self, first: bytes) -> bool:
        """A WebSocket, a browser or a TLS client at this OSC port: told so in its own language
        where it has one (server/wrong_port.py), and closed."""
        transport, session = self._transport, self.session
        if transport is None or session is None:
            return False
        local = peer_host(transport.get_extra_info("sockname")) or "127.0.0.1"
        wrong = on_osc_port(first, self._router.config, local)
        if wrong is None:
            return False
        self.hub_count(ErrorCode.WRONG_PORT, wrong.detail)
        if wrong.answer:
            transport.write(wrong.answer)
        transport.close()
        return True

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
        self._checking = False
        pause = self.hub_checked(check)
        if pause:
            self._pause(pause)
        else:
            self._resume()

    def eof_received(self) -> bool:
        return False  # the peer is done sending: close our side too

    def pause_writing(self) -> None:
        # Called from inside a write, while the hub flushes: tell the hub on a turn of its own
        # (a Sink must not call back into the hub).
        asyncio.get_running_loop().call_soon(self._report_slow_consumer)

    def _report_slow_consumer(self) -> None:
        if self._transport is not None:
            self.hub_slow_consumer(self._transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        pass  # a slow consumer is reset, never left paused

    def connection_lost(self, exc: Exception | None) -> None:
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        if exc is not None and self.session is not None:
            log.info("gone %s: %s", self.session.describe(), exc)
        # On a later turn, in order with the rest (RouterServer.defer): when a venue's Wi-Fi
        # drops, hundreds of connections end in one turn, and each leave changes a user list.
        self._router.defer(self.hub_gone)

    # -- Sink: the hub's side (write: see the class attribute) ---------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()  # sends what is buffered first, then closes

    def reset(self) -> None:
        if self._transport is not None:
            reset(self._transport)

    def socket(self) -> socket.socket | None:
        return None if self._transport is None else self._transport.get_extra_info("socket")
