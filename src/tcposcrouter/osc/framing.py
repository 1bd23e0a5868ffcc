"""Framings: how OSC packets travel on a connection (docs/protocol.md §1).

* OSC 1.0 *length prefix*: an int32 big-endian byte count, then the packet (a TCP stream).
* OSC 1.1 *SLIP* (RFC 1055): ``END packet END`` with ESC escapes (a TCP stream).
* *WebSocket*: one binary message is one packet; the message boundaries are the framing, so
  no bytes are added (the osc.js convention).

A decoder is fed bytes as they arrive (for WebSocket: one whole message per call) and returns the
complete packets found so far. It never holds more than the maximum packet size for one frame: a
length prefix is checked before any payload is buffered, and a SLIP frame is refused as soon as
it grows past the limit.

Shared by the router, the client and the bridge. Pure code: no sockets, no event loop.
"""

from __future__ import annotations

import enum
import struct
from typing import Protocol

from ..errors import ErrorCode, RemoteError
from ..limits import DEFAULT_MAX_PACKET_SIZE

__all__ = [
    "DEFAULT_HTTP_PORT",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_OSC10_PORT",
    "DEFAULT_OSC11_PORT",
    "DEFAULT_TLS_OSC10_PORT",
    "DEFAULT_TLS_OSC11_PORT",
    "AutoDecoder",
    "Framing",
    "InvalidFrame",
    "LengthPrefixDecoder",
    "MessageDecoder",
    "PacketDecoder",
    "SlipDecoder",
    "decoder_for",
    "frame",
    "frame_length_prefix",
    "frame_slip",
]


# The router's default ports, one per framing (each detects the other on its first byte), the
# HTTP port for WebSocket, and the two framings over TLS: the router listens on them, and the
# client library fills in a port left out and names them in its advice.
DEFAULT_OSC10_PORT, DEFAULT_OSC11_PORT, DEFAULT_HTTP_PORT = 55555, 55556, 55557
DEFAULT_TLS_OSC10_PORT, DEFAULT_TLS_OSC11_PORT = 55558, 55559

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD
_INT32 = struct.Struct(">i")
_END_BYTE = b"\xc0"
_ESC_BYTE = b"\xdb"


class Framing(enum.Enum):
    LENGTH_PREFIX = "length-prefix"
    SLIP = "slip"
    WEBSOCKET = "websocket"

    @property
    def is_stream(self) -> bool:
        """Whether framed packets may be joined into one write (a byte stream), or each must
        go out as a message of its own (WebSocket)."""
        return self is not Framing.WEBSOCKET


class InvalidFrame:
    """A SLIP frame that was cut out of the stream but cannot be decoded.

    The stream itself stays in step (the next END starts a new frame), so only this frame is
    lost: the decoder returns this marker in its place and the caller answers `packet_invalid`.
    """

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


class PacketDecoder(Protocol):
    @property
    def framing(self) -> Framing | None:
        """The framing this decoder reads; None while it has not seen a byte to tell."""
        ...

    def feed(self, data: bytes) -> list[bytes | InvalidFrame]: ...

    def set_max_packet_size(self, size: int) -> None: ...

    def buffered(self) -> int:
        """Bytes held for a packet that has not fully arrived yet."""
        ...


def frame_length_prefix(packet: bytes) -> bytes:
    return len(packet).to_bytes(4, "big") + packet


def frame_slip(packet: bytes) -> bytes:
    # Always a double END: python-osc's SLIP reader splits on END END and loses single-END frames
    # (docs/testing.md), and every other SLIP reader accepts the double form.
    if END in packet or ESC in packet:
        packet = packet.replace(_ESC_BYTE, b"\xdb\xdd").replace(_END_BYTE, b"\xdb\xdc")
    return _END_BYTE + packet + _END_BYTE


def frame(packet: bytes, framing: Framing) -> bytes:
    """The bytes that carry `packet` in `framing` (for WebSocket: the packet itself)."""
    if framing is Framing.LENGTH_PREFIX:
        return frame_length_prefix(packet)
    if framing is Framing.SLIP:
        return frame_slip(packet)
    return packet


def _too_large(size: int, limit: int) -> RemoteError:
    return RemoteError(
        ErrorCode.PACKET_TOO_LARGE,
        f"packet of {size} bytes is larger than the limit of {limit} bytes",
        fatal=True,
    )


class LengthPrefixDecoder:
    """OSC 1.0 stream framing: int32 big-endian length, then that many bytes."""

    framing = Framing.LENGTH_PREFIX
    __slots__ = ("_max", "_need", "_pending")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._max = max_packet_size
        # Bytes of an incomplete frame, and how many must be held before parsing can go on:
        # appending to a bytearray keeps a packet that trickles in byte by byte linear in cost.
        # Empty, it is the shared b"": an idle connection holds no buffer.
        self._pending: bytes | bytearray = b""
        self._need = 0

    def set_max_packet_size(self, size: int) -> None:
        self._max = size

    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes | InvalidFrame]:
        """Return every complete packet; raise `RemoteError` (fatal) on a bad length."""
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            data = bytes(self._pending)
            self._pending = b""
        packets: list[bytes | InvalidFrame] = []
        pos = 0
        total = len(data)
        limit = self._max
        unpack = _INT32.unpack_from
        while total - pos >= 4:
            size = unpack(data, pos)[0]
            if size <= 0:
                raise RemoteError(
                    ErrorCode.FRAMING_ERROR,
                    f"length prefix {size} is not a positive byte count",
                    fatal=True,
                )
            if size > limit:
                raise _too_large(size, limit)
            end = pos + 4 + size
            if end > total:
                self._need = 4 + size
                break
            packets.append(data[pos + 4 : end])
            pos = end
        else:
            self._need = 4
        if pos < total:
            self._pending = bytearray(data[pos:])  # a partial frame: held until it completes
        return packets


class SlipDecoder:
    """OSC 1.1 stream framing: RFC 1055 SLIP, single or double END, empty frames ignored."""

    framing = Framing.SLIP
    __slots__ = ("_max", "_max_encoded", "_pending")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._max = max_packet_size
        # Escaping at most doubles a packet, so an encoded frame longer than this cannot decode
        # to an acceptable packet and is refused before it is held any longer.
        self._max_encoded = 2 * max_packet_size
        self._pending: bytes | bytearray = b""  # the frame begun after the last END

    def set_max_packet_size(self, size: int) -> None:
        self._max = size
        self._max_encoded = 2 * size

    def buffered(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes | InvalidFrame]:
        if _END_BYTE not in data:
            if self._pending:
                self._pending += data
            else:
                self._pending = bytearray(data)
            if len(self._pending) > self._max_encoded:
                raise _too_large(len(self._pending), self._max)
            return []
        pieces = data.split(_END_BYTE)
        if self._pending:
            pieces[0] = bytes(self._pending) + pieces[0]
        # The last piece has no END after it yet: it is the start of the next frame.
        tail = pieces.pop()
        if len(tail) > self._max_encoded:
            raise _too_large(len(tail), self._max)
        self._pending = bytearray(tail) if tail else b""
        packets: list[bytes | InvalidFrame] = []
        for piece in pieces:
            if not piece:
                continue  # between the two ENDs of a double END, or a keep-alive END
            if ESC in piece:
                decoded = _unescape(piece)
                if decoded is None:
                    packets.append(InvalidFrame("SLIP escape byte not followed by 0xDC or 0xDD"))
                    continue
                piece = decoded
            if len(piece) > self._max:
                raise _too_large(len(piece), self._max)
            packets.append(piece)
        return packets


def _unescape(piece: bytes) -> bytes | None:
    parts = piece.split(_ESC_BYTE)
    out = [parts[0]]
    for part in parts[1:]:
        if not part:
            return None  # ESC at the end of the frame, or ESC ESC
        code = part[0]
        if code == ESC_END:
            out.append(_END_BYTE)
        elif code == ESC_ESC:
            out.append(_ESC_BYTE)
        else:
            return None
        out.append(part[1:])
    return b"".join(out)


class MessageDecoder:
    """WebSocket: each call brings one whole message, which is one packet."""

    framing = Framing.WEBSOCKET
    __slots__ = ("_max",)

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._max = max_packet_size

    def set_max_packet_size(self, size: int) -> None:
        self._max = size

    def buffered(self) -> int:
        return 0  # the WebSocket layer assembles messages; nothing is held here

    def feed(self, data: bytes) -> list[bytes | InvalidFrame]:
        if len(data) > self._max:
            raise _too_large(len(data), self._max)
        if not data:
            return [InvalidFrame("empty WebSocket message")]
        return [data]


class AutoDecoder:
    """Chooses the framing from the first byte of the stream (docs/protocol.md §1, extension).

    A length prefix of a packet under 16 MiB starts with 0x00; a SLIP stream starts with END or
    with the packet itself ('/' or '#'), never with 0x00.
    """

    __slots__ = ("_inner", "_max")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._max = max_packet_size
        self._inner: LengthPrefixDecoder | SlipDecoder | None = None

    @property
    def framing(self) -> Framing | None:
        """None until the first byte has arrived."""
        return None if self._inner is None else self._inner.framing

    @property
    def inner(self) -> LengthPrefixDecoder | SlipDecoder | None:
        """The decoder of the framing found; a caller may use it directly from then on."""
        return self._inner

    def set_max_packet_size(self, size: int) -> None:
        self._max = size
        if self._inner is not None:
            self._inner.set_max_packet_size(size)

    def buffered(self) -> int:
        return 0 if self._inner is None else self._inner.buffered()

    def feed(self, data: bytes) -> list[bytes | InvalidFrame]:
        inner = self._inner
        if inner is None:
            if not data:
                return []
            inner = LengthPrefixDecoder(self._max) if data[0] == 0 else SlipDecoder(self._max)
            self._inner = inner
        return inner.feed(data)


def decoder_for(framing: Framing | None, max_packet_size: int) -> PacketDecoder:
    """A decoder for a connection whose framing is known, or detected from its first byte."""
    if framing is None:
        return AutoDecoder(max_packet_size)
    if framing is Framing.LENGTH_PREFIX:
        return LengthPrefixDecoder(max_packet_size)
    if framing is Framing.SLIP:
        return SlipDecoder(max_packet_size)
    return MessageDecoder(max_packet_size)
