"""`--workers N`: a connection that cannot move to its group's worker is relayed to it.

A TLS session lives in the process that made its handshake, and a WebSocket's handshake has
been answered by the worker that read it: neither can be handed over as a socket
(server/handoff.py). For them, the worker that accepted the connection keeps it and makes a
Unix socket pair: one end is handed to the owner with the client's address, like any TCP
connection, and the owner serves it as one, with the group's state and every rule; this worker
copies what the client sends, as plain OSC bytes, into its end, and what the owner writes back
to the client. The group's packets between its members stay in the owner; a relayed member's
own packets cross one more local socket each way.

A relay never holds much: when the owner stops reading (a spent rate budget), the relay's end
fills and the client is no longer read, as on TCP; when the client does not read, more than
`max_output_buffer` waiting for it resets it, as the hub would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import NamedTuple, Protocol, cast

from .handoff import RELAY, Handoff
from .sockets import reset

__all__ = [
    "OwnerLink",
    "Relayed",
    "RelayedClient",
    "StreamRelay",
    "open_link",
    "read_relayed",
    "reset_if_behind",
]

log = logging.getLogger("tcposcrouter.server")

# Bytes the relay's end of the pair holds for the owner before the client is no longer read.
LINK_BUFFER = 64 * 1024

_HEADER = struct.Struct("!H")


class Relayed(NamedTuple):
    """Who a relayed connection is, as the owner's log lines and per-address limits see it."""

    peer: str  # "host:port", for log lines
    address: str  # what per-address limits count
    transport: str  # "TLS" or "WebSocket", for log lines


def _relay_data(relayed: Relayed, held: bytes) -> bytes:
    text = "\n".join(relayed).encode("utf-8", "surrogateescape")
    return _HEADER.pack(len(text)) + text + held


def read_relayed(data: bytes) -> tuple[Relayed, bytes] | None:
    """(who the relayed connection is, the bytes read from it so far) from what came with the
    relay's end of the pair; None if it is not that."""
    if len(data) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(data)
    fields = data[_HEADER.size : _HEADER.size + size].decode("utf-8", "surrogateescape")
    parts = fields.split("\n")
    if len(parts) != 3:
        return None
    return Relayed(*parts), data[_HEADER.size + size :]


def reset_if_behind(transport: asyncio.Transport, limit: int, what: str) -> None:
    """Reset a relayed client once more than `limit` (max_output_buffer; 0: none) waits for it,
    as the hub resets a slow consumer of its own."""
    if limit and transport.get_write_buffer_size() > limit:
        log.info("%s reset: it does not read what its group sends", what)
        reset(transport)


class RelayedClient(Protocol):
    """The client's side of a relay, as its link to the owner drives it."""

    def from_owner(self, data: bytes) -> None:
        """Bytes the owner wrote for the client."""

    def hold(self) -> None:
        """The owner is not reading: stop reading the client."""

    def release(self) -> None:
        """The owner reads again."""

    def owner_gone(self) -> None:
        """The owner closed the connection (or died): close the client's."""


class OwnerLink(asyncio.Protocol):
    """This worker's end of a relayed connection's socket pair."""

    __slots__ = ("_client", "_closed", "_pending", "_transport")

    def __init__(self, client: RelayedClient) -> None:
        self._client = client
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # sent before the transport was made
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = t = cast(asyncio.Transport, transport)
        t.set_write_buffer_limits(high=LINK_BUFFER)
        if self._closed:
            t.close()
            return
        for data in self._pending:
            t.write(data)
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self._client.from_owner(data)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self._client.hold()

    def resume_writing(self) -> None:
        self._client.release()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._client.owner_gone()

    def send(self, data: bytes) -> None:
        """Bytes the client sent, for the owner."""
        transport = self._transport
        if transport is None:
            self._pending.append(data)
        elif not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        """The client is gone: so is the connection in the owner, once it has read the rest."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()


# Links being made: held here, since the loop keeps only weak references to its tasks.
_making: set[asyncio.Future[tuple[asyncio.Transport, OwnerLink]]] = set()


def open_link(
    handoff: Handoff, owner: int, relayed: Relayed, held: bytes, client: RelayedClient
) -> OwnerLink | None:
    """Hand one end of a new socket pair to worker `owner`, as a connection from `relayed`
    that has sent `held`; return the link to it, or None if that worker cannot take it now."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sent = handoff.send(owner, theirs.fileno(), RELAY, _relay_data(relayed, held))
    finally:
        theirs.close()  # the owner has its own copy, if it took it
    if not sent:
        ours.close()
        return None
    ours.setblocking(False)
    link = OwnerLink(client)
    making = asyncio.ensure_future(
        asyncio.get_running_loop().connect_accepted_socket(lambda: link, ours)
    )
    _making.add(making)
    making.add_done_callback(_making.discard)
    return link


class StreamRelay(asyncio.Protocol):
    """A TLS connection relayed to its group's owner: the transport's protocol from the moment
    it is relayed, in the worker that holds its TLS session."""

    __slots__ = ("_limit", "_transport", "link")

    def __init__(self, transport: asyncio.Transport, limit: int) -> None:
        self._transport = transport
        self._limit = limit  # max_output_buffer: more waiting for the client resets it
        self.link: OwnerLink | None = None

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link.send(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.close()

    def from_owner(self, data: bytes) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        transport.write(data)
        reset_if_behind(transport, self._limit, "relayed connection")

    def hold(self) -> None:
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def release(self) -> None:
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def owner_gone(self) -> None:
        self._transport.close()  # after what the owner wrote last (its goodbye, its error)
