"""A client's connection to a router: where `--server` points, the link that carries the bytes
(TCP, TLS or WebSocket), and every way of failing to open one turned into `CannotConnect`
with its reason (client/diagnosis.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from ..osc.framing import (
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TLS_OSC10_PORT,
    DEFAULT_TLS_OSC11_PORT,
    Framing,
)
from .diagnosis import CannotConnect, Target

__all__ = [
    "CONNECT_SECONDS",
    "Link",
    "closed_unanswered",
    "open_link",
    "parse_server",
    "speaks_tls",
    "target_of",
]

# Connecting (and a WebSocket's handshake) gives up after this; a TLS probe after a silent close
# (see `speaks_tls`) after much less, since the port has just answered.
CONNECT_SECONDS = 10.0
PROBE_SECONDS = 2.0


_SCHEMES = (
    # scheme, kind, framing, the router's default port for it
    ("tcp://", "tcp", Framing.LENGTH_PREFIX, DEFAULT_OSC10_PORT),
    ("osc.tcp://", "tcp", Framing.LENGTH_PREFIX, DEFAULT_OSC10_PORT),  # liblo's way of writing it
    ("slip://", "tcp", Framing.SLIP, DEFAULT_OSC11_PORT),
    ("tls://", "tls", Framing.LENGTH_PREFIX, DEFAULT_TLS_OSC10_PORT),
    ("tls+slip://", "tls", Framing.SLIP, DEFAULT_TLS_OSC11_PORT),
)


def parse_server(server: str) -> tuple[str, str, int, Framing]:
    """`HOST[:PORT]`, `tcp://…`, `slip://…`, `tls://…`, `tls+slip://…`, `ws://…`, `wss://…` →
    (kind, host or URL, port, framing). kind is "tcp", "tls" or "ws"; a port left out is the
    router's default for that scheme (55555, 55556, 55558, 55559). TLS checks the router's
    certificate against the system's authorities (or `$SSL_CERT_FILE`)."""
    if server.startswith(("ws://", "wss://")):
        return (
            "ws",
            server if urlsplit(server).path else server.rstrip("/") + "/osc",
            0,
            (Framing.WEBSOCKET),
        )
    if server.startswith(("http://", "https://")):
        secure = "s" if server.startswith("https") else ""
        raise ValueError(
            f"{server!r} is a web page's address (the dashboard, in a browser); a client joins "
            f"with ws{secure}://HOST:PORT/osc, or HOST:PORT for OSC over TCP"
        )
    kind, framing, port = "tcp", Framing.LENGTH_PREFIX, DEFAULT_OSC10_PORT
    for scheme, scheme_kind, scheme_framing, default_port in _SCHEMES:
        if server.startswith(scheme):
            kind, framing, port = scheme_kind, scheme_framing, default_port
            server = server[len(scheme) :]
            break
    if "://" in server:
        raise ValueError(f"unknown scheme in {server!r} (tcp, slip, tls, tls+slip, ws, wss)")
    host = server
    if server.startswith("["):  # [IPv6]:PORT or [IPv6]
        host, _, rest = server[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"not HOST:PORT: {server!r}")
            port = int(rest[1:])
    elif server.count(":") == 1:
        host, _, text = server.partition(":")
        if not text.isdigit():
            raise ValueError(f"not HOST:PORT: {server!r}")
        port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"{port} is not a TCP port, in {server!r}")
    return kind, host or "127.0.0.1", port, framing


def target_of(server: str) -> Target:
    """Where `server` points, for the reasons a connection fails (client/diagnosis.py)."""
    kind, host, port, framing = parse_server(server)
    if kind == "ws":
        return Target.websocket(host)
    return Target(server, kind, host, port, slip=framing is Framing.SLIP)


class Link:
    """A connection's bytes in and out: TCP streams or an aiohttp WebSocket."""

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def receive(self) -> bytes | None:
        """The next bytes (for WebSocket: one message); None when the connection is gone."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _TcpLink(Link):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Late is wrong: back-to-back sends must not wait for each other (Nagle's algorithm
            # held python-osc's second message back by 44 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes | None:
        try:
            data = await self._reader.read(65536)
        except (ConnectionError, OSError):
            return None
        return data or None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class _WebSocketLink(Link):
    def __init__(self, session: Any, ws: Any) -> None:
        self._session, self._ws = session, ws

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def receive(self) -> bytes | None:
        import aiohttp

        while True:
            message = await self._ws.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                return bytes(message.data)
            if message.type is aiohttp.WSMsgType.TEXT:
                continue  # the router never sends text
            return None

    async def close(self) -> None:
        await self._ws.close()
        await self._session.close()


async def open_link(target: Target) -> tuple[Link, Framing]:
    """Connect to `target`; raise `CannotConnect` with what went wrong and what to do."""
    kind, host, port, framing = parse_server(target.server)
    try:
        if kind == "ws":
            return await asyncio.wait_for(_open_websocket(target, host), CONNECT_SECONDS), framing
        context = ssl.create_default_context() if kind == "tls" else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), CONNECT_SECONDS
        )
    except CannotConnect:
        raise
    except ssl.SSLError as error:
        raise target.tls_error(error) from None
    except asyncio.TimeoutError:
        raise target.timed_out() from None
    except OSError as error:
        raise target.os_error(error) from None
    return _TcpLink(reader, writer), framing


async def _open_websocket(target: Target, url: str) -> Link:
    import aiohttp

    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, compress=0, max_msg_size=0, autoping=True)
    except BaseException as error:
        await session.close()
        if isinstance(error, aiohttp.WSServerHandshakeError):
            headers = {k.lower(): v for k, v in (error.headers or {}).items()}
            raise target.http_status(error.status, headers) from None
        if isinstance(error, aiohttp.ClientConnectorCertificateError):
            raise target.tls_error(error.certificate_error) from None  # type: ignore[arg-type]
        if isinstance(error, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
            if isinstance(error.__cause__, ssl.SSLError):
                raise target.tls_error(error.__cause__) from None
            raise target.tls_error(ssl.SSLError(str(error))) from None
        if isinstance(error, aiohttp.ClientConnectorError):
            raise target.os_error(error.os_error) from None
        if isinstance(error, aiohttp.ServerDisconnectedError):
            if not target.secure and await speaks_tls(target.host, target.port):
                raise target.speaks_tls() from None
            raise target.closed_unanswered() from None
        if isinstance(error, aiohttp.ClientResponseError):
            raise target.not_http() from None  # bytes that are no HTTP status line
        if isinstance(error, aiohttp.ClientError):
            raise target.fail(f"{type(error).__name__}: {error}") from None
        raise
    return _WebSocketLink(session, ws)


async def closed_unanswered(target: Target) -> CannotConnect:
    """The connection ended before the register was answered: a plain client at a TLS port
    (asked of the port itself), or no router at all."""
    if target.kind == "tcp" and await speaks_tls(target.host, target.port):
        return target.speaks_tls()
    return target.closed_unanswered()


async def speaks_tls(host: str, port: int) -> bool:
    """Whether `host:port` completes a TLS handshake (its certificate not checked): asked
    when a plain connection was closed without a word, to tell a TLS port from the rest."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), PROBE_SECONDS
        )
    except (OSError, asyncio.TimeoutError):  # ssl.SSLError is an OSError
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
