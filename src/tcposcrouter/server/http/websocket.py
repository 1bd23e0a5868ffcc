"""OSC over WebSocket (`/osc` on the HTTP port): one binary message is one OSC packet, the
convention of osc.js and osc-js (docs/protocol.md §1).

aiohttp does the handshake and reads the frames; every message then goes to the hub exactly as
a TCP read does, and the hub's outbox writes through this connection as its `Sink`. Writes are
framed here and go straight to the transport, without awaiting: the outbox writes to every
receiver in one synchronous pass, and awaiting aiohttp's `send_bytes` per receiver cost 1.7
times the CPU per delivery (benchmarks/results/ws-library.md). Reading is paused the way TCP's
is, by not asking aiohttp for the next message: its queue fills, it stops reading the socket,
and TCP slows the sender.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Mapping

from aiohttp import WSCloseCode, WSMsgType, web

from ...core.hub import WAIT_FOR_CHECK
from ...core.register import PasswordCheck
from ...core.session import UNREGISTERED
from ...errors import ErrorCode, RemoteError
from ...osc.framing import Framing, LengthPrefixDecoder, frame_length_prefix
from ...osc.messages import error_message, register_message
from ..connection import HubConnection
from ..handoff import packet_group
from ..relay import OwnerLink, Relayed, open_link, reset_if_behind
from ..running import RunningRouter
from ..sockets import format_peer, peer_host, reset, tune_socket
from ..to_owner import move_to_owner
from .door import HttpDoor
from .frame_guard import FrameRefusal

__all__ = [
    "REGISTER_PARAMETERS",
    "WebSocketConnection",
    "WebSocketRelay",
    "binary_frame",
    "serve_osc",
]

log = logging.getLogger("tcposcrouter.server")

# `/osc?user=…&password=…&group=…&group_password=…` registers on open (docs/protocol.md §8).
REGISTER_PARAMETERS = ("user", "password", "group", "group_password")


def binary_frame(payload: bytes) -> bytes:
    """One unmasked binary frame, as a server sends it (RFC 6455 §5.2: FIN set, opcode 2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x82, 126, n) + payload
    return struct.pack("!BBQ", 0x82, 127, n) + payload


class WebSocketConnection(HubConnection):
    """One `/osc` connection: feeds the hub, and is its `Sink`."""

    __slots__ = (
        "_after_check",
        "_closing",
        "_limit",
        "_relay",
        "_resume",
        "_slow_reported",
        "_transport",
        "_ws",
    )

    def __init__(
        self, router: RunningRouter, ws: web.WebSocketResponse, transport: asyncio.Transport
    ) -> None:
        super().__init__(router)
        self._ws = ws
        self._transport = transport
        self._limit = router.config.limits.max_output_buffer
        self._slow_reported = False
        self._closing: asyncio.Task[bool] | None = None
        # Set when a register's check is done and reading may go on.
        self._resume = asyncio.Event()
        self._after_check = 0.0  # what `password_checked` said about reading on
        # With --workers: set once the connection is relayed to its group's worker.
        self._relay: WebSocketRelay | None = None

    def open(self, peer: str, address: str) -> None:
        tune_socket(self._transport.get_extra_info("socket"), self._router.config.limits)
        session = self.open_session(peer, address, Framing.WEBSOCKET)
        log.info("connect %s (connection %d, WebSocket)", session.describe(), session.id)

    async def receive(self, data: bytes) -> None:
        """Hand one message to the hub (or to the owner of its group, once relayed there);
        return once reading may go on."""
        if self._relay is not None:
            await self._relay.send(data)
            return
        session = self.session
        assert session is not None
        # With --workers, a first packet may go to its group's worker while no register has
        # begun here (one refused here for want of room may find room in the owner).
        if session.state in UNREGISTERED and self._router.handoff is not None:
            group = packet_group(data)
            if group is not None and await self._relay_to_owner(group, data):
                return
        pause = self.hub_receive(session, data)
        while pause:
            if pause == WAIT_FOR_CHECK:
                self._resume.clear()
                await self._resume.wait()
                pause = self._after_check
            else:
                await asyncio.sleep(pause)
                pause = 0.0

    async def _relay_to_owner(self, group: str, register: bytes) -> bool:
        """With --workers: relay this WebSocket, whose first packet `register` registers for
        `group`, to the worker that owns the group (server/to_owner.py); return once that is
        settled. False if it stays here (this worker owns the group, or, in a cluster, that
        one cannot take it now)."""
        handoff, session = self._router.handoff, self.session
        assert handoff is not None and session is not None
        who = Relayed(session.peer, session.address, "WebSocket")

        def move(owner: int) -> str | None:
            relay = WebSocketRelay(self._transport, self._limit, self.close)
            relay.link = open_link(handoff, owner, who, frame_length_prefix(register), relay)
            if relay.link is None:
                return None
            self._relay = relay
            return "relayed"

        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done() -> None:
            if not settled.done():
                settled.set_result(None)

        transport = self._transport
        if not move_to_owner(
            self._router, self, group, move, lambda: not transport.is_closing(), done
        ):
            return False
        await settled  # waiting for an owner: nothing more is read meanwhile
        return True

    def password_checked(self, check: PasswordCheck) -> None:
        self._after_check = self.hub_checked(check)
        self._resume.set()

    def reject(self, error: RemoteError) -> None:
        """Something that is not an OSC packet arrived (a text message): answer it."""
        if self._relay is not None:  # answered here: the owner never sees a text message
            self._relay.to_client([error_message(error.code, error.detail)])
            return
        self.hub_refuse(error)

    def count_broken(self, error: object) -> None:
        """aiohttp refused a frame (too large, or not RFC 6455) and has closed the connection
        with the matching close code; the router counts it as the error a TCP client would
        get."""
        self._count_closed(getattr(error, "code", None), str(error))

    # -- FramesWatcher (server/http/door.py) ----------------------------------------------

    def frames_refused(self, refusal: FrameRefusal) -> None:
        """The door refused a frame and is closing the connection with `refusal.code`."""
        self._count_closed(refusal.code, refusal.reason)

    def _count_closed(self, close_code: int | None, reason: str) -> None:
        """Count a connection closed for its frames as the error a TCP client would get:
        `packet_too_large` for close code 1009, else `framing_error`."""
        too_large = close_code == WSCloseCode.MESSAGE_TOO_BIG
        code = ErrorCode.PACKET_TOO_LARGE if too_large else ErrorCode.FRAMING_ERROR
        self.hub_count(code, reason)

    def lost(self) -> None:
        """The WebSocket is gone, whoever closed it."""
        self._resume.set()
        if self._relay is not None:
            self._relay.gone()
        self.hub_gone()

    # -- Sink ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport.is_closing():
            raise RuntimeError("connection closed")  # the outbox then writes nothing more
        transport.write(binary_frame(data))
        if self._limit and not self._slow_reported:
            buffered = transport.get_write_buffer_size()
            if buffered > self._limit:
                # Told on a turn of its own: a Sink must not call back into the hub.
                self._slow_reported = True
                asyncio.get_running_loop().call_soon(self._report_slow_consumer)

    def _report_slow_consumer(self) -> None:
        self.hub_slow_consumer(self._transport.get_write_buffer_size())

    def close(self) -> None:
        """A closing handshake after what was written (close code 1000)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(
                self._ws.close(code=WSCloseCode.OK, message=b"closed by the router")
            )
            # Once the closing handshake is over, the connection is gone, whether or not the
            # handler's own read has seen it end (it may wait on the peer for long).
            self._closing.add_done_callback(self._closed)

    def _closed(self, closing: asyncio.Future[bool]) -> None:
        if not closing.cancelled():
            closing.exception()  # taken, so that asyncio does not report it as lost
        self.lost()

    def reset(self) -> None:
        reset(self._transport)

    def socket(self) -> socket.socket | None:
        sock: socket.socket | None = self._transport.get_extra_info("socket")
        return sock


class WebSocketRelay:
    """A WebSocket relayed to its group's worker (server/relay.py): each message goes to the
    owner length-prefixed, and each packet the owner writes comes back as a binary message."""

    __slots__ = ("_close", "_decoder", "_limit", "_transport", "_writable", "link")

    def __init__(self, transport: asyncio.Transport, limit: int, close: Callable[[], None]) -> None:
        self._transport = transport
        self._limit = limit  # max_output_buffer: more waiting for the client resets it
        self._close = close  # the WebSocket's closing handshake
        # The owner's packets: no larger than the router lets anyone send, and its own replies.
        self._decoder = LengthPrefixDecoder(1 << 30)
        self._writable = asyncio.Event()
        self._writable.set()
        self.link: OwnerLink | None = None

    async def send(self, packet: bytes) -> None:
        """One message from the client, for the owner; return once it reads again."""
        if self.link is not None:
            self.link.send(frame_length_prefix(packet))
        await self._writable.wait()

    def gone(self) -> None:
        """The WebSocket is gone: so is the member in the owner."""
        self._writable.set()
        if self.link is not None:
            self.link.close()

    # -- RelayedClient -------------------------------------------------------------------

    def from_owner(self, data: bytes) -> None:
        self.to_client([packet for packet in self._decoder.feed(data) if isinstance(packet, bytes)])

    def to_client(self, packets: list[bytes]) -> None:
        """Packets for the client, a binary message each."""
        transport = self._transport
        if transport.is_closing():
            return
        for packet in packets:
            transport.write(binary_frame(packet))
        reset_if_behind(transport, self._limit, "relayed WebSocket")

    def hold(self) -> None:
        self._writable.clear()

    def release(self) -> None:
        self._writable.set()

    def owner_gone(self) -> None:
        self._writable.set()
        self._close()


def client_address(request: web.Request, trusted_proxies: frozenset[str]) -> tuple[str, str]:
    """(peer for log lines, address that per-address limits count) of a WebSocket client.

    Behind a reverse proxy every client comes from the proxy's address: a trusted proxy's
    `X-Forwarded-For` names the client (its last entry is the one that proxy added), so that a
    class behind one proxy is not counted as one laptop, nor one guesser as everybody."""
    transport = request.transport
    peername = None if transport is None else transport.get_extra_info("peername")
    peer = format_peer(peername)
    host = peer_host(peername) or peer
    if host in trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            return f"{forwarded} via {peer}", forwarded
    return peer, host


def register_from_query(query: Mapping[str, str]) -> bytes | None:
    """The register a URL asks for, or None: `/osc?user=…&password=…&group=…&group_password=…`.
    A parameter left out is an empty string, which the register's own checks then answer."""
    if not any(name in query for name in REGISTER_PARAMETERS):
        return None
    user, password, group, group_password = (query.get(name, "") for name in REGISTER_PARAMETERS)
    return register_message(user, password, group, group_password)


async def serve_osc(
    server: RunningRouter, request: web.Request, door: HttpDoor | None
) -> web.StreamResponse:
    """The `/osc` endpoint: one WebSocket connection, from handshake to close. `door`: the
    connection's `HttpDoor`, which reads its frame headers from here on."""
    limits = server.config.limits
    ws = web.WebSocketResponse(
        compress=False,  # per-message deflate costs more than it saves on small packets
        # Bigger messages are refused by aiohttp before they are buffered whole: close 1009.
        # (aiohttp refuses a message as long as its limit: hence the one byte more.)
        max_msg_size=limits.max_packet_size + 1,
        autoping=True,
    )
    if server.shutting_down:
        return web.Response(status=503, text="the router is shutting down\n")
    if not ws.can_prepare(request).ok:
        return web.Response(
            status=426,
            text="This is tcposcrouter's OSC-over-WebSocket endpoint: connect with a "
            "WebSocket client (one binary message per OSC packet).\n",
            headers={"Upgrade": "websocket"},
        )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    connection = WebSocketConnection(server, ws, transport)
    if door is None or not door.upgraded(connection):
        log.warning("a WebSocket handshake its door did not see: closed")
        await ws.close()
        return ws
    server.connections.add(connection)
    peer, address = client_address(request, server.config.trusted_proxies)
    try:
        connection.open(peer, address)
        register = register_from_query(request.query)
        if register is not None:
            await connection.receive(register)
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.BINARY:
                await connection.receive(message.data)
            elif message.type is WSMsgType.TEXT:
                connection.reject(
                    RemoteError(
                        ErrorCode.PACKET_INVALID,
                        "a text message: OSC over WebSocket goes in binary messages",
                    )
                )
            elif message.type is WSMsgType.ERROR:
                connection.count_broken(message.data)
                break
            else:  # CLOSE, CLOSING, CLOSED
                break
    finally:
        connection.lost()
    return ws
