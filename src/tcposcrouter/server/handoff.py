"""`--workers N`: a group lives in one worker. A connection that registers in a worker that
does not own its group is handed to the worker that does, before the register is read
(docs/cluster.md, "One machine, every core").

The owner of a group is `owner_of(group, N)`, the same in every worker. The worker that accepted
the connection reads until it has the first packet; if that is a register for a group another
worker owns, it passes the socket's file descriptor and every byte it has read (the register
and whatever came with it) over that worker's Unix socket (`SCM_RIGHTS`), and forgets the
connection; the owner takes it as if it had accepted it and reads the bytes first. The client
sees nothing: same connection, same replies. A TLS session, and a WebSocket whose handshake was
answered here, cannot move: those are relayed instead (server/relay.py), through a socket pair
whose other end is handed over the same way.

The shells do none of this themselves: server/to_owner.py reads the first packet, moves the
connection with what is here, and waits for an owner that cannot take it now.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..core.lifecycle import PRE_REGISTER_MAX_PACKET_SIZE
from ..errors import RemoteError
from ..osc.framing import AutoDecoder
from ..osc.messages import REGISTER, read_register
from ..osc.resume import resume_group
from ..osc.tempo import INFO_PREFIX
from ..osc.validate import validate_packet

__all__ = [
    "HTTP",
    "MAX_HANDED_BYTES",
    "OSC",
    "RELAY",
    "WORKER_DIR_ENV",
    "WORKER_ENV",
    "WORKER_TOKEN_ENV",
    "Handoff",
    "owner_of",
    "packet_group",
    "register_group",
    "url_group",
]

log = logging.getLogger("tcposcrouter.server")

# How the supervisor tells a worker who it is: "INDEX/COUNT" (1-based), the folder of the
# workers' Unix sockets, and the dashboard's admin token it made (one for all workers).
WORKER_ENV = "TCPOSCROUTER_WORKER"
WORKER_DIR_ENV = "TCPOSCROUTER_WORKER_DIR"
WORKER_TOKEN_ENV = "TCPOSCROUTER_WORKER_ADMIN_TOKEN"
# The most a worker holds of a connection before it knows where it belongs: the first packet
# of an unregistered connection is at most PRE_REGISTER_MAX_PACKET_SIZE (16 KiB; a register is
# a few hundred bytes), and what came with it in the same reads is passed along with it.
MAX_HANDED_BYTES = 64 * 1024


def owner_of(group: str, count: int) -> int:
    """The worker (1 … `count`) that owns `group`: the same answer in every worker."""
    return zlib.crc32(group.encode("utf-8", "surrogateescape")) % count + 1


def url_group(head: bytes) -> str | None:
    """The group a WebSocket handshake to `/osc` registers for from its URL, or None."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3:
        return None
    target = urlsplit(line[1].decode("latin-1"))
    if target.path != "/osc":
        return None
    groups = parse_qs(target.query).get("group")
    return groups[0] if groups else None


def register_group(data: bytes) -> tuple[bool, str | None, bool]:
    """(whether the first packet of the stream `data` is complete, the group it registers for,
    whether all it holds so far are `/oscrouter/info` requests). The group is None when the
    packet is not a well-formed register (the hub then answers it, in the worker that has it).
    Info requests may come before the register (docs/protocol.md §12): the first packet after
    them is the one looked at, and when only they have come (and nothing of the next packet),
    the worker answers them and looks at the next packet."""
    decoder = AutoDecoder(PRE_REGISTER_MAX_PACKET_SIZE)
    try:
        packets = decoder.feed(data)
    except RemoteError:
        return True, None, False
    asked = 0
    while asked < len(packets) and _is_info(packets[asked]):
        asked += 1
    if asked == len(packets):
        # Only questions are whole. If the next packet has begun, wait for it: handed to the
        # hub now, its first bytes would be read here and the packet never looked at.
        answer_now = bool(asked) and not decoder.buffered()
        return answer_now, None, answer_now
    first = packets[asked]
    return True, packet_group(first) if isinstance(first, bytes) else None, False


def _is_info(packet: bytes | object) -> bool:
    return isinstance(packet, bytes) and packet.startswith(INFO_PREFIX)


def packet_group(packet: bytes) -> str | None:
    """The group `packet` registers for, or resumes a place in (docs/protocol.md §14); None
    when it is neither, well-formed."""
    if not packet.startswith(REGISTER):
        return resume_group(packet)
    try:
        validate_packet(packet)
        return read_register(packet).group
    except RemoteError:
        return None


# What a handed connection is, the first byte of what comes with it: OSC bytes, an HTTP
# request, or a relay's end of a socket pair (server/relay.py).
OSC, HTTP, RELAY = b"O", b"H", b"R"

# Takes a handed connection: its socket, its kind, the bytes read from it.
Adopt = Callable[[socket.socket, bytes, bytes], None]


class Handoff:
    """This worker's end: its Unix socket, which takes connections from the others, and its
    channels to theirs."""

    def __init__(self, index: int, count: int, folder: Path) -> None:
        self.index = index
        self.count = count
        self._folder = folder
        self._listener: socket.socket | None = None
        self._peers: list[socket.socket] = []  # the other workers' channels to this one
        self._channels: dict[int, socket.socket] = {}  # this one's to the others

    @classmethod
    def from_environment(cls) -> Handoff | None:
        """The worker's place, as the supervisor gave it; None outside `--workers`."""
        place, folder = os.environ.get(WORKER_ENV), os.environ.get(WORKER_DIR_ENV)
        if not place or not folder:
            return None
        index, _, count = place.partition("/")
        return cls(int(index), int(count), Path(folder))

    @property
    def folder(self) -> Path:
        """The workers' folder, this user's only: their Unix sockets."""
        return self._folder

    def path(self, index: int) -> Path:
        return self._folder / f"worker-{index}.sock"

    def owner(self, group: str) -> int:
        return owner_of(group, self.count)

    def start(self, adopt: Adopt) -> None:
        """Listen for connections handed over; `adopt` takes each (its socket, its kind, the
        bytes read from it so far)."""
        path = self.path(self.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by this worker's previous life
        listener = self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        loop.add_reader(listener.fileno(), self._accept, adopt)

    def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in self._peers:
            loop.remove_reader(peer.fileno())
            peer.close()
        self._peers.clear()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path(self.index).unlink()

    def elsewhere(self, group: str) -> int | None:
        """The worker that owns `group`, if that is another one; None if it is this one."""
        owner = self.owner(group)
        return None if owner == self.index else owner

    def pass_on(self, transport: asyncio.Transport, owner: int, kind: bytes, data: bytes) -> bool:
        """Hand the connection of `transport` (of `kind`, OSC or HTTP, with `data` read from
        it) to worker `owner`, and close this process's descriptor of it: no FIN, no RST, since
        the owner holds its own. False if it stays here: its TLS session lives here (relay it:
        server/relay.py), or the owner cannot take it now."""
        if transport.get_extra_info("sslcontext") is not None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None or not self.send(owner, sock.fileno(), kind, data):
            return False
        transport.abort()
        return True

    def send(self, owner: int, descriptor: int, kind: bytes, data: bytes) -> bool:
        """Pass `descriptor` and what comes with it to worker `owner`; False if it cannot take
        it now (not listening while it restarts, gone, or its queue full)."""
        channel = self._channels.get(owner)
        try:
            if channel is None:
                channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                channel.setblocking(False)
                channel.connect(str(self.path(owner)))
                self._channels[owner] = channel
            rights = array.array("i", [descriptor])
            channel.sendmsg([kind, data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except OSError as error:
            log.debug("worker %d cannot take a connection now: %s", owner, error)
            if channel is not None:
                channel.close()
            self._channels.pop(owner, None)
            return False
        return True

    def _accept(self, adopt: Adopt) -> None:
        assert self._listener is not None
        try:
            peer, _ = self._listener.accept()
        except BlockingIOError:
            return
        peer.setblocking(False)
        self._peers.append(peer)
        asyncio.get_running_loop().add_reader(peer.fileno(), self._receive, peer, adopt)

    def _receive(self, peer: socket.socket, adopt: Adopt) -> None:
        space = socket.CMSG_SPACE(array.array("i", [0]).itemsize)
        try:
            data, ancillary, _, _ = peer.recvmsg(MAX_HANDED_BYTES + 1, space)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        descriptors = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                descriptors.frombytes(payload[: len(payload) - len(payload) % descriptors.itemsize])
        if not data and not descriptors:  # that worker closed its channel
            asyncio.get_running_loop().remove_reader(peer.fileno())
            self._peers.remove(peer)
            peer.close()
            return
        for descriptor in descriptors:
            adopt(socket.socket(fileno=descriptor), data[:1], data[1:])
