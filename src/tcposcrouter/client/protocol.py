"""The client's side of the protocol as a pure object: bytes in, events out (docs/protocol.md).

`ClientProtocol` frames what the client sends and turns what the router sends into events: the
register's outcome, user lists, error replies, time replies, the tempo, a session granted or
resumed, and everyone else's packets. With a session on it counts what it receives
(docs/protocol.md §14), so that a new connection can resume where this one ended. It
holds no socket and reads no clock; the asyncio client (`aio.py`) feeds it and acts on the
events, and the tests drive it with bytes.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from ..errors import ErrorCode, RouterError
from ..osc.first_bytes import Speaks, first_bytes_speak
from ..osc.framing import (
    Framing,
    InvalidFrame,
    LengthPrefixDecoder,
    MessageDecoder,
    PacketDecoder,
    SlipDecoder,
    frame,
)
from ..osc.messages import TIME, register_message, time_tag, unix_time
from ..osc.messages import build_bundle as osc_bundle
from ..osc.reading import read_message
from ..osc.resume import SESSION, SESSION_ACK, SESSION_PREFIX, SESSION_RESUME, SESSION_RESUMED
from ..osc.state import STATE, STATE_BEGIN, STATE_CLEAR, STATE_END, unwrap_state
from ..osc.tempo import read_tempo_message

__all__ = [
    "Argument",
    "ClientProtocol",
    "ClientState",
    "NotOsc",
    "Packet",
    "Refused",
    "RegisterRefused",
    "Registered",
    "Resumed",
    "RouterErrorReply",
    "SessionGranted",
    "StateBegin",
    "StateCleared",
    "StateEnd",
    "StateValue",
    "TempoLine",
    "TimeReply",
    "UserList",
    "as_private",
    "build_bundle",
    "build_message",
]

# What a client accepts from the router: far above any musical packet.
MAX_INCOMING_PACKET = 16 * 1024 * 1024

# An argument: a python-osc value (int → i, float → f, str → s, bytes → b, bool → T/F,
# None → N), or (type tag, value) for any type python-osc builds: ("d", 0.5), ("h", 2**40),
# ("m", (0, 0x90, 60, 100)), ("r", 0xFF0000FF).
Argument = Any


class RegisterRefused(RouterError):
    """The router refused the register: `code` is its `/oscrouter/error` code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ClientState(enum.Enum):
    CONNECTED = "connected"  # nothing sent yet
    RESUMING = "resuming"  # a resume sent: resumed, or refused and then a register
    REGISTERING = "registering"
    REGISTERED = "registered"
    REFUSED = "refused"


@dataclass(frozen=True)
class Packet:
    """A packet from another member: its exact bytes, read on demand. `address` and `args`
    read strings as UTF-8, or as Latin-1 where they are not UTF-8 (osc-js sends those; see
    osc/reading.py), so they never fail; `message()` and `bundle()` are python-osc's objects,
    which refuse strings that are not UTF-8. `received`: when it arrived, on the client's
    clock (0 where no clock was read)."""

    raw: bytes
    received: float = field(default=0.0, compare=False)

    @property
    def is_bundle(self) -> bool:
        return self.raw.startswith(b"#bundle\x00")

    @property
    def address(self) -> str:
        return "#bundle" if self.is_bundle else read_message(self.raw).address

    @property
    def args(self) -> list[Any]:
        return [] if self.is_bundle else read_message(self.raw).args

    def message(self) -> OscMessage:
        return OscMessage(self.raw)

    def bundle(self) -> OscBundle:
        return OscBundle(self.raw)

    @property
    def private_from(self) -> str | None:
        """The sender of a private message (`/oscrouter/private ,ss… sender address …`)."""
        if not self.raw.startswith(b"/oscrouter/private\x00"):
            return None
        args = self.args
        return str(args[0]) if args else None


@dataclass(frozen=True)
class Registered:
    user: str
    random_id: int


@dataclass(frozen=True)
class Refused:
    code: str
    detail: str


@dataclass(frozen=True)
class UserList:
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NotOsc:
    """The first bytes back on a stream are not OSC (osc/first_bytes.py): the client reached
    a web port, a TLS port or something else, not a router's OSC port."""

    speaks: Speaks


@dataclass(frozen=True)
class RouterErrorReply:
    """A non-fatal error reply after the register (`rate_limited`, `unknown_user` …)."""

    code: str
    detail: str


@dataclass(frozen=True)
class TimeReply:
    """The router's answer to a time request: all three in Unix seconds."""

    client_time: float
    server_receive: float
    server_send: float


@dataclass(frozen=True)
class TempoLine:
    """The group's tempo (`/oscrouter/tempo ,tddii`, docs/protocol.md §11): from `t0` (Unix
    seconds on the router's clock) the group is at beat `beat0`, moving at `bpm`, in bars of
    `quantum` beats, its transport `playing` (1) or stopped (0)."""

    t0: float
    beat0: float
    bpm: float
    quantum: int
    playing: int

    def beat_at(self, router_time: float) -> float:
        """The group's beat at `router_time` (Unix seconds on the router's clock)."""
        return self.beat0 + (router_time - self.t0) * self.bpm / 60.0


@dataclass(frozen=True)
class SessionGranted:
    """`/oscrouter/session ,si token seconds`: the place is kept `seconds` after a drop (no
    session: an empty token, 0)."""

    token: str
    seconds: int


@dataclass(frozen=True)
class Resumed:
    """`/oscrouter/session/resumed ,i n`: the place is this connection's; packets from n + 1
    follow."""

    received: int


@dataclass(frozen=True)
class ResumeFailed:
    """The router cannot resume (`resume_expired`): register on the same connection."""

    detail: str


@dataclass(frozen=True)
class StateBegin:
    """The group's whole state follows (docs/protocol.md §13): on joining, or asked again."""


@dataclass(frozen=True)
class StateEnd:
    """The whole state has been told."""


@dataclass(frozen=True)
class StateValue:
    """The group's current value for `address`: `packet` (the message itself). `hand_on`: the
    program hears it as a message too (the state told on joining, a change by another
    member); False for the state asked again, which only brings the mapping up to date."""

    address: str
    packet: Packet
    hand_on: bool


@dataclass(frozen=True)
class StateCleared:
    address: str


Event = (
    Registered
    | StateBegin
    | StateEnd
    | StateValue
    | StateCleared
    | Refused
    | UserList
    | RouterErrorReply
    | TimeReply
    | TempoLine
    | SessionGranted
    | Resumed
    | ResumeFailed
    | Packet
    | NotOsc
)


def build_message(address: str, *args: Argument) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[0], str):
            builder.add_arg(arg[1], arg[0])
        else:
            builder.add_arg(arg)
    return bytes(builder.build().dgram)


# The time tag that means "at once" (OSC 1.0).
IMMEDIATELY = b"\x00\x00\x00\x00\x00\x00\x00\x01"


def build_bundle(packets: list[bytes], at: float | None = None) -> bytes:
    """A bundle of `packets` (each a message or bundle), for Unix time `at` or immediately."""
    return osc_bundle(IMMEDIATELY if at is None else time_tag(at), packets)


def _padded(data: bytes) -> bytes:
    """An OSC string's bytes: a NUL, then NULs up to a multiple of four."""
    return data + b"\x00" * (4 - len(data) % 4)


def as_private(user: str, message: bytes) -> bytes:
    """`message` sent to `user` alone: `/oscrouter/private ,ss… user address args…`, with the
    message's own type tags and argument bytes unchanged (docs/protocol.md §3)."""
    address_end = message.index(b"\x00")
    tags_at = (address_end // 4 + 1) * 4
    if message[tags_at : tags_at + 1] != b",":
        tags, arguments = b"", b""  # an old-style message without type tags
    else:
        tags_end = message.index(b"\x00", tags_at)
        tags, arguments = message[tags_at + 1 : tags_end], message[(tags_end // 4 + 1) * 4 :]
    return (
        _padded(b"/oscrouter/private")
        + _padded(b",ss" + tags)
        + _padded(user.encode())
        + _padded(message[:address_end])
        + arguments
    )


class ClientProtocol:
    """One connection's worth of client protocol; make a new one per connection."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._decoder: PacketDecoder
        if framing is Framing.LENGTH_PREFIX:
            self._decoder = LengthPrefixDecoder(MAX_INCOMING_PACKET)
        elif framing is Framing.SLIP:
            self._decoder = SlipDecoder(MAX_INCOMING_PACKET)
        else:
            self._decoder = MessageDecoder(MAX_INCOMING_PACKET)
        self.state = ClientState.CONNECTED
        self.users: list[str] = []
        self.user = ""
        self._random_id = 0
        self._reply_address = b""
        self._heard = not framing.is_stream  # a WebSocket's first bytes were its handshake's
        # With a session: the packets received since it began (across resumes), numbered as
        # the router numbers them, and the last number acknowledged.
        self.numbering = False
        self.received = 0
        self.acked = 0
        # The state frames told on this connection (the first, on joining, is handed on), and
        # whether one is being told now.
        self._state_frames = 0
        self._in_state_frame = False

    def frame(self, packet: bytes) -> bytes:
        """`packet` as it goes on the wire (for WebSocket: the message itself)."""
        return frame(packet, self.framing) if self.framing.is_stream else packet

    def register(
        self, user: str, password: str, group: str, group_password: str, random_id: int = 0
    ) -> bytes:
        self.user = user
        self._random_id = random_id or random.randint(1, 2**31 - 1)
        self._reply_address = f"/oscrouter/register/{user}/{self._random_id}".encode()
        self.state = ClientState.REGISTERING
        return self.frame(register_message(user, password, group, group_password, self._random_id))

    def session_request(self, seconds: int) -> bytes:
        """Ask for a session: the place kept `seconds` after a drop (0: none)."""
        return self.frame(build_message(SESSION, ("i", seconds)))

    def ack(self) -> bytes:
        """Acknowledge everything received so far."""
        self.acked = self.received
        return self.frame(build_message(SESSION_ACK, ("i", self.received)))

    def resume(self, group: str, token: str, received: int) -> bytes:
        """Take back a kept place: the first packet of a new connection (a new protocol
        object), `received` the last number the old one counted."""
        self.state = ClientState.RESUMING
        self.numbering = True
        self.received = self.acked = received
        return self.frame(
            build_message(SESSION_RESUME, ("s", group), ("s", token), ("i", received))
        )

    def follow_state(self) -> list[bytes]:
        """Hear the others' state changes wrapped (so the mapping stays current), and ask for
        the whole state again, wrapped, to start the mapping from: two packets, framed."""
        follow = build_message(STATE + "/follow", ("i", 1))
        return [self.frame(follow), self.frame(build_message(STATE))]

    def time_request(self, client_time: float) -> bytes:
        return self.frame(TIME + b",t\x00\x00" + time_tag(client_time))

    def receive_data(self, data: bytes) -> list[Event]:
        """Bytes (for WebSocket: one message) from the router → what they mean. Raises
        `RemoteError` for a stream the framing cannot split (the connection is lost)."""
        if not self._heard and data:
            self._heard = True
            speaks = first_bytes_speak(data)
            # The router answers in the framing it was spoken to in (docs/protocol.md §1).
            if speaks not in (Speaks.OSC_LENGTH_PREFIX, Speaks.OSC_SLIP):
                return [NotOsc(speaks or Speaks.UNKNOWN)]
        events: list[Event] = []
        for packet in self._decoder.feed(data):
            if isinstance(packet, InvalidFrame):
                continue  # the router never sends one; a broken stream is not the caller's
            if packet.startswith(SESSION_PREFIX):
                event = self._session_event(packet)
                if event is not None:
                    events.append(event)
                    continue
            if self.numbering:
                self.received += 1
            event = self._event(packet)
            if event is not None:
                events.append(event)
        return events

    @property
    def _handing(self) -> bool:
        """Whether the state being told is handed on: only the first frame, on joining."""
        return self._state_frames <= 1

    def _session_event(self, packet: bytes) -> Event | None:
        """The router's `/oscrouter/session…` replies (not numbered); None for anything else
        under that prefix."""
        message = read_message(packet)
        args = message.args
        if message.address == SESSION and len(args) == 2:
            token, seconds = str(args[0]), int(args[1])
            if token and seconds and not self.numbering:  # numbered from the next packet on
                self.numbering = True
                self.received = self.acked = 0
            if not token:
                self.numbering = False
            return SessionGranted(token, seconds)
        if message.address == SESSION_RESUMED and args:
            self.state = ClientState.REGISTERED
            return Resumed(int(args[0]))
        return None

    def _event(self, packet: bytes) -> Event | None:
        if not packet.startswith(b"/oscrouter/") or packet.startswith(b"/oscrouter/private\x00"):
            if self._in_state_frame:
                return StateValue(read_message(packet).address, Packet(packet), self._handing)
            return Packet(packet)
        message = read_message(packet)
        address = message.address
        if self.state is ClientState.REGISTERING and address == self._reply_address.decode():
            self.state = ClientState.REGISTERED
            return Registered(self.user, self._random_id)
        if address == "/oscrouter/userlist":
            self.users = [str(name) for name in message.args]
            return UserList(list(self.users))
        if address == "/oscrouter/error":
            params = message.args
            code, detail = (str(params[0]), str(params[1])) if len(params) >= 2 else ("", "")
            if self.state is ClientState.RESUMING:
                self.state = ClientState.CONNECTED
                self.numbering = False
                if code == ErrorCode.RESUME_EXPIRED:
                    return ResumeFailed(detail)
                return Refused(code, detail)  # a router that knows no resume: it closes
            if self.state is ClientState.REGISTERING:
                self.state = ClientState.REFUSED
                return Refused(code, detail)
            return RouterErrorReply(code, detail)
        if packet.startswith(TIME + b",ttt\x00\x00\x00\x00") and len(packet) == 48:
            return TimeReply(
                unix_time(packet[24:32]), unix_time(packet[32:40]), unix_time(packet[40:48])
            )
        tempo = read_tempo_message(packet)
        if tempo is not None:
            return TempoLine(*tempo)
        if address == "/oscrouter/register":
            return None  # the second form of the register reply: Registered said it already
        if address == STATE_BEGIN:
            # The group's state (docs/protocol.md §13): what follows until the end is its
            # messages, unwrapped, or wrapped for a follower.
            self._state_frames += 1
            self._in_state_frame = True
            return StateBegin()
        if address == STATE_END:
            self._in_state_frame = False
            return StateEnd()
        if address == STATE:  # a follower hears a value wrapped
            unwrapped = unwrap_state(packet)
            if unwrapped is not None:
                return StateValue(
                    unwrapped[0], Packet(unwrapped[1]), self._handing or not self._in_state_frame
                )
        if address == STATE_CLEAR and message.args:
            return StateCleared(str(message.args[0]))
        return Packet(packet)  # anything newer the router may send
