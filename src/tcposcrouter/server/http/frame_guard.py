"""The frame headers a WebSocket client sends, read before aiohttp reads the frames, to refuse
what aiohttp lets through (docs/protocol.md §8, "Frames the router refuses").

aiohttp refuses reserved bits, unknown opcodes, long or fragmented control frames and messages
over `max_msg_size`, but it takes an unmasked client frame as data and waits without end for
the last frame of a message sent in thousands of pieces. The guard reads only the headers (2 to
14 bytes a frame) and skips the payloads, so it costs a few hundred nanoseconds a message.

Pure code: bytes and the time in, a refusal or None out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "MAX_FRAMES_PER_MESSAGE",
    "PINGS_PER_SECOND",
    "PING_BURST",
    "FrameGuard",
    "FrameRefusal",
]

# RFC 6455 §7.4.1 close codes.
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

# Browsers and the WebSocket libraries of osc.js, osc-js and python send a message in one
# frame, or in a few large ones; thousands of small frames are only ever an attack on the
# reader's patience.
MAX_FRAMES_PER_MESSAGE = 256
# Clients ping to keep a connection alive, every few seconds at most; each ping costs a pong.
PINGS_PER_SECOND = 5.0
PING_BURST = 20.0

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10
_KNOWN = frozenset((_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG))


@dataclass(frozen=True)
class FrameRefusal:
    """Why a connection's frames end it: the close code to send and the reason."""

    code: int
    reason: str


class FrameGuard:
    """Follows one client's frames from the first byte after the handshake."""

    __slots__ = (
        "_frames",
        "_header",
        "_in_message",
        "_max_message",
        "_message_size",
        "_ping_checked",
        "_ping_tokens",
        "_skip",
        "refused_at",
    )

    def __init__(self, max_message: int) -> None:
        self._max_message = max_message
        self._header = b""  # the start of a header split across reads
        self._skip = 0  # payload bytes of the current frame still to come
        self._in_message = False  # a data frame without FIN was seen
        self._frames = 0  # frames of the message in progress
        self._message_size = 0
        self._ping_tokens = PING_BURST
        self._ping_checked: float | None = None
        self.refused_at = 0

    def feed(self, data: bytes, now: float) -> FrameRefusal | None:
        """Read the headers in `data`, the next bytes from the client; a refusal ends the
        connection (nothing after it need be fed), and `refused_at` is then where in `data`
        the refused frame begins (0 if it began in an earlier read)."""
        carried = len(self._header)
        if carried:
            data = self._header + data
            self._header = b""
        at, end = 0, len(data)
        while at < end:
            if self._skip:
                step = min(self._skip, end - at)
                self._skip -= step
                at += step
                continue
            if end - at < 2 or (data[at + 1] & 0x80 and end - at < _header_size(data, at)):
                # A header split across reads (an unmasked one is refused below, as soon as
                # its second byte is there).
                self._header = bytes(data[at:])
                return None
            refusal = self._frame(data, at, now)
            if refusal is not None:
                self.refused_at = max(0, at - carried)
                return refusal
            size = _header_size(data, at)
            at += size
        return None

    def _frame(self, data: bytes, at: int, now: float) -> FrameRefusal | None:
        first, second = data[at], data[at + 1]
        if first & 0x70:
            return FrameRefusal(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension was agreed")
        opcode = first & 0x0F
        if opcode not in _KNOWN:
            return FrameRefusal(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if not second & 0x80:
            return _UNMASKED
        length = second & 0x7F
        if length == 126:
            length = struct.unpack_from("!H", data, at + 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", data, at + 2)[0]
            if length >> 63:
                return FrameRefusal(CLOSE_PROTOCOL_ERROR, "a frame length with its top bit set")
        final = bool(first & 0x80)
        if opcode >= _CLOSE:
            if not final or length > 125:
                return FrameRefusal(
                    CLOSE_PROTOCOL_ERROR, "a control frame fragmented or over 125 bytes"
                )
            if opcode == _PING and not self._take_ping(now):
                return FrameRefusal(CLOSE_POLICY, f"more than {PINGS_PER_SECOND:g} pings a second")
        elif opcode == _CONTINUATION:
            if not self._in_message:
                return FrameRefusal(CLOSE_PROTOCOL_ERROR, "a continuation frame with no message")
            self._frames += 1
            if self._frames > MAX_FRAMES_PER_MESSAGE:
                return FrameRefusal(
                    CLOSE_POLICY, f"a message in more than {MAX_FRAMES_PER_MESSAGE} frames"
                )
            refusal = self._grow(length)
            if refusal is not None:
                return refusal
            self._in_message = not final
        else:
            if self._in_message:
                return FrameRefusal(
                    CLOSE_PROTOCOL_ERROR, "a new message before the last one's final frame"
                )
            self._frames, self._message_size = 1, 0
            refusal = self._grow(length)
            if refusal is not None:
                return refusal
            self._in_message = not final
        self._skip = length
        return None

    def _grow(self, length: int) -> FrameRefusal | None:
        self._message_size += length
        if self._message_size > self._max_message:
            return FrameRefusal(
                CLOSE_TOO_BIG, f"a message over the packet size limit of {self._max_message} bytes"
            )
        return None

    def _take_ping(self, now: float) -> bool:
        """A token bucket: PING_BURST pings at once, then PINGS_PER_SECOND."""
        if self._ping_checked is not None:
            self._ping_tokens = min(
                PING_BURST, self._ping_tokens + (now - self._ping_checked) * PINGS_PER_SECOND
            )
        self._ping_checked = now
        if self._ping_tokens < 1.0:
            return False
        self._ping_tokens -= 1.0
        return True


_UNMASKED = FrameRefusal(CLOSE_PROTOCOL_ERROR, "an unmasked frame: a client masks every frame")


def _header_size(data: bytes, at: int) -> int:
    """The size of the header that starts at `at` (its first two bytes are there)."""
    length = data[at + 1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    mask = 4 if data[at + 1] & 0x80 else 0
    return 2 + extended + mask
