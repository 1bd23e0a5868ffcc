"""The HTTP port's door: every connection passes an `HttpDoor` on its way to aiohttp's handler.

The door does what aiohttp does not:
- it counts the connection in the `WaitingPool` until it becomes a WebSocket, and closes the
  oldest when the pool is full, so idle and slow connections cannot fill the port;
- it holds each request head until it is whole and checked (server/http/head_check.py), so that
  aiohttp never reads, echoes or logs a request line it would refuse (a URL registration's
  carries passwords), nor answers one that is not HTTP/1.x;
- it answers an OSC client or a TLS client at this plain port in its own language
  (server/wrong_port.py);
- from a WebSocket handshake on, it reads the client's frame headers with a `FrameGuard` and
  ends the connection, with a close frame, at the first frame the guard refuses (a client that
  does not read is the hub's to end, as on TCP: server/http/websocket.py).

With `--workers`, a WebSocket handshake that registers from its URL for a group another worker
owns is handed to that worker before aiohttp answers it (server/handoff.py).

The request-head deadline is aiohttp's own: `keepalive_timeout` closes a connection that has
not sent a whole request head in that time, the first one included (tested in
tests/integration/test_http_door.py); aiohttp reads no byte of a head the door holds, so its
timer runs on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import struct
from typing import Protocol, cast

from aiohttp import web

from ..handoff import HTTP, url_group
from ..listeners import HTTP_ACCEPTS_PER_TURN, Listener, bind
from ..running import RunningRouter
from ..sockets import format_peer, peer_host
from ..wrong_port import on_http_port
from .frame_guard import FrameGuard, FrameRefusal
from .head_check import HeadRefusal, check_head, check_partial_head
from .waiting import WaitingPool, http_connection_cap

__all__ = ["Entrance", "FramesWatcher", "GuardedSite", "HttpDoor"]

log = logging.getLogger("tcposcrouter.server")

# A TLS client whose request has not come this long after its handshake is logged at -vv.
NO_REQUEST_SECONDS = 2.0
_ASKS_FOR_WEBSOCKET = re.compile(rb"\nupgrade[ \t]*:[^\n]*websocket", re.IGNORECASE)


class FramesWatcher(Protocol):
    """The WebSocket endpoint's side of a door."""

    def frames_refused(self, refusal: FrameRefusal) -> None:
        """The door refused a frame and is closing the connection with `refusal.code`."""


class Entrance:
    """The doors of one HTTP port and the pool that counts them."""

    def __init__(self, router: RunningRouter) -> None:
        self._router = router
        self.pool: WaitingPool[HttpDoor] = WaitingPool()
        self._by_transport: dict[asyncio.BaseTransport, HttpDoor] = {}
        self.evicted = 0

    def of(self, transport: asyncio.BaseTransport | None) -> HttpDoor | None:
        return None if transport is None else self._by_transport.get(transport)

    def opened(self, door: HttpDoor, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = door
        config = self._router.config
        host = peer_host(transport.get_extra_info("peername"))
        address = None if host is None or host in config.trusted_proxies else host
        limits = config.limits
        evicted = self.pool.admit(
            door,
            address,
            self._router.now(),
            per_address=limits.max_unregistered_per_address,
            total=http_connection_cap(limits.max_connections),
        )
        for old in evicted:
            self.evicted += 1
            log.debug("HTTP connection closed to make room (%d open)", len(self.pool))
            old.close()

    def closed(self, door: HttpDoor, transport: asyncio.BaseTransport | None) -> None:
        self.pool.leave(door)
        if transport is not None:
            self._by_transport.pop(transport, None)

    def now(self) -> float:
        return self._router.now()

    def at_wrong_port(self, transport: asyncio.Transport, first: bytes) -> bool:
        """An OSC program or a TLS client at the HTTP port: told so in its own language where
        it has one (server/wrong_port.py), and closed."""
        wrong = on_http_port(first, self._router.config)
        if wrong is None:
            return False
        peer = format_peer(transport.get_extra_info("peername"))
        log.info("HTTP connection [%s]: %s", peer, wrong.detail)
        if wrong.answer:
            transport.write(wrong.answer)
        transport.close()
        return True

    def max_message(self) -> int:
        return self._router.config.limits.max_packet_size

    def hand_over(self, transport: asyncio.Transport, head: bytes) -> bool:
        """With --workers: hand a WebSocket handshake that registers from its URL for a group
        another worker owns to that worker, `head` and all (it has not been answered)."""
        handoff = self._router.handoff
        group = None if handoff is None else url_group(head)
        owner = None if handoff is None or group is None else handoff.elsewhere(group)
        if handoff is None or owner is None or not handoff.pass_on(transport, owner, HTTP, head):
            return False  # a register by message, or over TLS: relayed once it is read
        log.info("a WebSocket for %s handed to worker %d", group, owner)
        return True


class HttpDoor(asyncio.Protocol):
    """One connection to the HTTP port, in front of aiohttp's `RequestHandler`."""

    __slots__ = (
        "_doors",
        "_guard",
        "_handed_in",
        "_handler",
        "_head",
        "_refused",
        "_spoke",
        "_transport",
        "_waiting",
        "_watcher",
        "_websocket",
    )

    def __init__(
        self, doors: Entrance, handler: asyncio.Protocol, *, handed_in: bool = False
    ) -> None:
        """`handed_in`: another worker accepted it and handed it here (server/handoff.py)."""
        self._handed_in = handed_in
        self._doors = doors
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._head = b""  # the part of a request head read so far
        self._guard: FrameGuard | None = None  # from a WebSocket handshake on
        self._watcher: FramesWatcher | None = None
        self._websocket = False  # the handshake is done
        self._refused = False
        self._spoke = handed_in  # bytes have come (a handed-in one spoke to another worker)
        self._waiting: asyncio.TimerHandle | None = None  # see _no_request_yet

    # -- what the endpoints tell the door ------------------------------------------------------

    def upgraded(self, watcher: FramesWatcher | None) -> bool:
        """The handshake is done: the connection is a WebSocket and leaves the pool. False if
        the door did not see the handshake's head (then it cannot read the frames, and the
        endpoint must close the connection)."""
        self._doors.pool.leave(self)
        self._watcher = watcher
        self._websocket = True
        return self._guard is not None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self._transport = cast(asyncio.Transport, transport)
        self._handler.connection_made(transport)
        self._doors.opened(self, transport)
        if not self._spoke and transport.get_extra_info("sslcontext") is not None:
            loop = asyncio.get_running_loop()
            self._waiting = loop.call_later(NO_REQUEST_SECONDS, self._no_request_yet)

    def _no_request_yet(self) -> None:
        """A TLS handshake done and no byte of a request since: a client that stalls (or a
        router that does not read) shows here at -vv."""
        self._waiting = None
        transport = self._transport
        if transport is not None and not self._spoke and not transport.is_closing():
            peer = format_peer(transport.get_extra_info("peername"))
            log.debug("HTTP connection [%s]: TLS done, no request yet after %g s", peer,
                      NO_REQUEST_SECONDS)  # fmt: skip

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        self._doors.closed(self, self._transport)
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._spoke:
            self._spoke = True
            if self._waiting is not None:
                self._waiting.cancel()
                self._waiting = None
            transport = self._transport
            if transport is not None and self._doors.at_wrong_port(transport, data):
                self._refused = True
                return
        guard = self._guard
        frames_at = 0
        if guard is None:
            data, found = self._through_heads(data)
            if found is None:
                if data and not self._refused:
                    self._handler.data_received(data)
                return
            frames_at = found
            guard = self._guard = FrameGuard(self._doors.max_message())
        refusal = guard.feed(data[frames_at:] if frames_at else data, self._doors.now())
        if refusal is not None:
            # What came before the refused frame is read as usual: nothing good is lost.
            good = frames_at + guard.refused_at
            if good:
                self._handler.data_received(data[:good])
            self._refuse(refusal)
            return
        self._handler.data_received(data)

    # -- inside ------------------------------------------------------------------------------

    def _through_heads(self, data: bytes) -> tuple[bytes, int | None]:
        """Follow the request heads in the stream, holding each until it is whole and checked
        (server/http/head_check.py). Return the bytes aiohttp may read now and, if a head asks for a
        WebSocket, where in them its frames begin (None: no WebSocket yet)."""
        before = len(self._head)
        stream = self._head + data
        start = 0
        searched = max(0, before - 3)
        while True:
            end = stream.find(b"\r\n\r\n", searched)
            if end < 0:
                break
            end += 4
            refusal = check_head(stream[start:end])
            if refusal is not None:
                self._refuse_head(refusal)
                return b"", None
            if _ASKS_FOR_WEBSOCKET.search(stream, start, end):
                self._head = b""
                transport = self._transport
                if (
                    not self._handed_in
                    and start == 0  # nothing of another request in front of it
                    and transport is not None
                    and self._doors.hand_over(transport, stream[start:])
                ):
                    # Forgotten here without a word: the connection lives on in the owner.
                    self._refused = True
                    return b"", None
                return stream, end
            start = searched = end
        self._head = stream[start:]
        refusal = check_partial_head(self._head, max(0, before - start))
        if refusal is not None:
            self._refuse_head(refusal)
            return b"", None
        return stream[:start], None

    def _refuse_head(self, refusal: HeadRefusal) -> None:
        """A head aiohttp must not read: a fixed answer that repeats nothing of it, and close."""
        self._refused = True
        self._head = b""
        transport = self._transport
        if transport is not None:
            peer = format_peer(transport.get_extra_info("peername"))
            log.info("HTTP connection [%s] refused: %s (%d)", peer, refusal.said, refusal.status)
            transport.write(refusal.answer())
            transport.close()

    def _refuse(self, refusal: FrameRefusal) -> None:
        self._refused = True
        transport = self._transport
        if transport is None:
            return
        if self._websocket:
            if self._watcher is not None:
                self._watcher.frames_refused(refusal)
            reason = refusal.reason.encode()[:120]
            transport.write(struct.pack("!BBH", 0x88, 2 + len(reason), refusal.code) + reason)
        transport.close()


class GuardedSite(web.BaseSite):
    """aiohttp's TCPSite with an `HttpDoor` in front of every connection, accepted a few a turn
    (server/listeners.py)."""

    __slots__ = ("_doors", "_host", "_listeners", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        doors: Entrance,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        reuse_port: bool,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._doors = doors
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._listeners: list[Listener] = []

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host or '0.0.0.0'}:{self._port}"

    @property
    def sockets(self) -> list[socket.socket]:
        return [sock for listener in self._listeners for sock in listener.sockets]

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        doors = self._doors
        for sock in bind(self._host, self._port, self._reuse_port):
            self._listeners.append(
                Listener(
                    sock,
                    lambda: HttpDoor(doors, server()),
                    self._ssl_context,
                    None,  # the event loop's default handshake deadline, as aiohttp's site
                    HTTP_ACCEPTS_PER_TURN,
                )
            )

    async def stop(self) -> None:
        for listener in self._listeners:
            listener.close()
        await super().stop()
