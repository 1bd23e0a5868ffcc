"""The one OSC test client: blocking (`Client`) for the tests, asyncio (`AsyncClient`) for the
soak tool's many small actors. Both decode with the router's own framers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support.osc import register
from tcposcrouter.osc.framing import (
    Framing,
    InvalidFrame,
    LengthPrefixDecoder,
    SlipDecoder,
    frame,
)
from tcposcrouter.osc.messages import register_message

__all__ = ["AsyncClient", "Client", "Inbox", "Received", "WsClient", "user_list"]


@dataclass
class Received:
    """One packet as received: its exact bytes, and the decoded message when it is one."""

    raw: bytes

    @property
    def address(self) -> str:
        return str(OscMessage(self.raw).address) if self.raw[:1] == b"/" else "#bundle"

    @property
    def args(self) -> list[object]:
        return list(OscMessage(self.raw).params)

    def bundle(self) -> OscBundle:
        return OscBundle(self.raw)


class Inbox:
    """Bytes from the router in, `Received` packets out, in the client's framing."""

    def __init__(self, framing: Framing) -> None:
        self.decoder = (
            LengthPrefixDecoder(1 << 24)
            if framing is Framing.LENGTH_PREFIX
            else SlipDecoder(1 << 24)
        )
        self.queue: list[Received] = []

    def feed(self, data: bytes) -> None:
        for packet in self.decoder.feed(data):
            assert not isinstance(packet, InvalidFrame), "the router sent an invalid SLIP frame"
            self.queue.append(Received(packet))


class Client:
    """A blocking OSC-over-TCP client with the framing of choice, for integration tests."""

    _open: ClassVar[list[Client]] = []  # closed after each test by a fixture in conftest.py

    def __init__(
        self,
        port: int,
        framing: Framing = Framing.LENGTH_PREFIX,
        host: str = "127.0.0.1",
        source: str | None = None,
        sock: socket.socket | None = None,
    ):
        self.framing = framing
        # `source` picks the client's own address: any of 127.0.0.0/8 works on Linux, so a test
        # can look like a host of its own to per-address limits. `sock`: a connection made
        # elsewhere (in a network namespace).
        self.sock = sock or socket.create_connection(
            (host, port), timeout=5, source_address=(source, 0) if source else None
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._inbox = Inbox(framing)
        self._queue = self._inbox.queue
        self.closed = False
        Client._open.append(self)

    def send(self, packet: bytes) -> None:
        self.sock.sendall(frame(packet, self.framing))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self._inbox.feed(data)
        return True

    def recv(self, timeout: float = 2.0) -> Received:
        deadline = time.monotonic() + timeout
        while not self._queue:
            if not self._fill(deadline):
                raise AssertionError(
                    "connection closed with nothing received"
                    if self.closed
                    else f"nothing received within {timeout} s"
                )
        return self._queue.pop(0)

    def recv_until(self, address: str, timeout: float = 2.0) -> Received:
        """Skip packets until one with `address` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.recv(max(0.01, deadline - time.monotonic()))
            if packet.address == address:
                return packet

    def expect_nothing(self, wait: float = 0.3) -> None:
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass
        assert not self._queue, f"unexpected: {[p.address for p in self._queue]}"

    def drain(self, wait: float = 0.2) -> list[Received]:
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass
        packets = self._queue[:]
        self._queue.clear()
        return packets

    def wait_closed(self, timeout: float = 2.0) -> list[Received]:
        """Read until the router closes the connection; return what came before."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._fill(deadline) and not self.closed:
                raise AssertionError(f"the router did not close the connection in {timeout} s")
        packets = self._queue[:]
        self._queue.clear()
        return packets

    def join(
        self, user: str, group: str = "band", *, password: str = "pw", group_password: str = "gpw"
    ) -> Client:
        """Register and consume the two replies, the first user list, the group's tempo and its
        state (docs/protocol.md §11, §13)."""
        self.send(register(user, group, password=password, group_password=group_password))
        first = self.recv()
        assert first.address == f"/oscrouter/register/{user}/1", first.address
        self.recv_until("/oscrouter/userlist")
        self.recv_until("/oscrouter/tempo")
        self.recv_until("/oscrouter/state/end")
        return self

    def close(self) -> None:
        self.sock.close()

    @classmethod
    def close_all(cls) -> None:
        for client in cls._open:
            client.close()
        cls._open.clear()


class WsClient(Client):
    """A blocking OSC-over-WebSocket client (websockets' own client: not the server's aiohttp),
    one binary message per packet, with everything `Client` offers."""

    def __init__(self, url: str, **options: Any) -> None:
        self.framing = Framing.WEBSOCKET
        # Entered by hand: the connection lives as long as this object, not a `with` block.
        opening = connect(url, open_timeout=5, max_size=1 << 24, compression=None, **options)
        self.ws = opening.__enter__()
        self.sock = self.ws.socket
        self._queue = []
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.texts: list[str] = []
        Client._open.append(self)

    def send(self, packet: bytes) -> None:
        self.ws.send(packet)

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        try:
            message = self.ws.recv(timeout=remaining)
        except TimeoutError:
            return False
        except ConnectionClosed as closed:
            self.closed = True
            if closed.rcvd is not None:
                self.close_code, self.close_reason = closed.rcvd.code, closed.rcvd.reason
            return False
        if isinstance(message, str):
            self.texts.append(message)
        else:
            self._queue.append(Received(message))
        return True

    def close(self) -> None:
        self.ws.close()


class OneThreadWsClient(Client):
    """A blocking OSC-over-WebSocket client whose reads and writes all run on the calling
    thread: aiohttp's client on an event loop of its own, run for each call. websockets' sync
    client reads its socket from a thread of its own while the caller writes; over TLS 1.3
    that sharing stalled 2 handshakes in 600 under load (the request never sent), so the
    `wss://` tests of --workers use this one."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        import aiohttp

        self.framing = Framing.WEBSOCKET
        self._loop = asyncio.new_event_loop()

        async def opened() -> tuple[aiohttp.ClientSession, Any]:
            session = aiohttp.ClientSession()
            try:
                ws = await session.ws_connect(
                    url, ssl=ssl_context if ssl_context is not None else True, compress=0,
                    max_msg_size=1 << 24, autoping=True,
                )  # fmt: skip
            except BaseException:
                await session.close()
                raise
            return session, ws

        try:
            self._session, self.ws = self._loop.run_until_complete(asyncio.wait_for(opened(), 5))
        except BaseException:
            self._loop.close()
            raise
        self._queue = []
        self.closed = False
        self.close_code: int | None = None
        self.texts: list[str] = []
        Client._open.append(self)

    def send(self, packet: bytes) -> None:
        self._loop.run_until_complete(self.ws.send_bytes(packet))

    def send_text(self, text: str) -> None:
        self._loop.run_until_complete(self.ws.send_str(text))

    def recv_text(self, timeout: float = 2.0) -> str:
        """The next text message (the dashboard's /live speaks JSON text)."""
        deadline = time.monotonic() + timeout
        while not self.texts:
            assert self._fill(deadline), f"no text message within {timeout} s"
        return self.texts.pop(0)

    def _fill(self, deadline: float) -> bool:
        import aiohttp

        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        try:
            message = self._loop.run_until_complete(self.ws.receive(timeout=remaining))
        except TimeoutError:
            return False
        if message.type is aiohttp.WSMsgType.BINARY:
            self._queue.append(Received(bytes(message.data)))
        elif message.type is aiohttp.WSMsgType.TEXT:
            self.texts.append(str(message.data))
        else:  # closing, closed, or an error: the connection is over
            self.closed = True
            self.close_code = self.ws.close_code
            return False
        return True

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                self._loop.run_until_complete(asyncio.wait_for(self.ws.close(), 5))
        finally:
            self._loop.run_until_complete(self._session.close())
            # A TLS connection's socket is closed a few loop turns after its TLS shutdown: let
            # them run before the loop goes, or the socket is left to the garbage collector.
            self._loop.run_until_complete(asyncio.sleep(0.05))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


class AsyncClient:
    """A length-prefix client over asyncio streams, for the soak tool's many small actors."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._inbox = Inbox(Framing.LENGTH_PREFIX)

    @classmethod
    async def open(cls, port: int, source: str) -> AsyncClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0), limit=1 << 20
        )
        return cls(reader, writer)

    def send(self, packet: bytes) -> None:
        self.writer.write(frame(packet, Framing.LENGTH_PREFIX))

    async def recv(self) -> bytes:
        queue = self._inbox.queue
        while not queue:
            data = await self.reader.read(1 << 16)
            if not data:
                raise ConnectionError("closed by the router")
            self._inbox.feed(data)
        return queue.pop(0).raw

    async def register(self, user: str, group: str) -> None:
        self.send(register_message(user, "pw", group, "g"))
        await self.writer.drain()
        while True:
            packet = await self.recv()
            if packet.startswith(b"/oscrouter/userlist"):
                return
            if packet.startswith(b"/oscrouter/error"):
                raise ConnectionError(f"register refused: {packet!r}")

    def close(self) -> None:
        self.writer.close()


def user_list(client: Client, expected: list[str], timeout: float = 5.0) -> None:
    """Read user lists until one equal to `expected` (as a set: nodes and workers may learn of
    joins in a different order) arrives."""
    deadline = time.monotonic() + timeout
    seen: list[object] = []
    while time.monotonic() < deadline:
        packet = client.recv_until("/oscrouter/userlist", max(0.05, deadline - time.monotonic()))
        seen = packet.args
        if sorted(map(str, seen)) == sorted(expected):
            return
    raise AssertionError(f"user list {seen}, not {expected}")
