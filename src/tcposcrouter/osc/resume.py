"""The wire forms of a kept place (docs/protocol.md §14): a member's `/oscrouter/session` and
`/oscrouter/session/ack`, a new connection's `/oscrouter/session/resume`, read into values,
and the router's replies.

Pure code, on validated messages.
"""

from __future__ import annotations

import struct

from ..errors import ErrorCode, RemoteError
from .messages import Argument, build_message, osc_string, parse_arguments
from .validate import validate_packet

__all__ = [
    "RESUME_PREFIX",
    "SESSION",
    "SESSION_ACK",
    "SESSION_ADDRESSES",
    "SESSION_PREFIX",
    "SESSION_RESUME",
    "SESSION_RESUMED",
    "ResumeRequest",
    "SessionRequest",
    "bad_session",
    "message_count",
    "read_ack",
    "read_resume",
    "read_session_request",
    "resume_group",
    "resumed_message",
    "session_reply",
]

SESSION = "/oscrouter/session"
SESSION_ACK = "/oscrouter/session/ack"
SESSION_RESUME = "/oscrouter/session/resume"
SESSION_RESUMED = "/oscrouter/session/resumed"
SESSION_ADDRESSES = frozenset({SESSION, SESSION_ACK})
# What every `/oscrouter/session…` address begins with (the router's own are not numbered).
SESSION_PREFIX = SESSION.encode()
# The bytes a resume begins with: its address, NUL-padded.
RESUME_PREFIX = osc_string(SESSION_RESUME)
_WHOLE = ("i", "h", "f", "d")
# What a session counts (docs/protocol.md §14): packets, or the messages in them, for clients
# that are handed a bundle's messages one by one (sclang, Pd's [oscparse]).
PACKETS, MESSAGES = "packets", "messages"
_SIZE = struct.Struct(">i")


class SessionRequest:
    """`/oscrouter/session ,i seconds` or `,is seconds unit`."""

    __slots__ = ("by_messages", "seconds")

    def __init__(self, seconds: int, by_messages: bool) -> None:
        self.seconds = seconds
        self.by_messages = by_messages


def message_count(packet: bytes) -> int:
    """The messages in a (validated) packet: 1 for a message; for a bundle, those of its
    elements, bundles inside it included."""
    if packet[:1] != b"#":
        return 1
    count, at, end = 0, 16, len(packet)  # "#bundle\0" and the time tag
    while at < end:
        (size,) = _SIZE.unpack_from(packet, at)
        count += message_count(packet[at + 4 : at + 4 + size])
        at += 4 + size
    return count


class ResumeRequest:
    """`/oscrouter/session/resume ,ssi group token n`."""

    __slots__ = ("group", "received", "token")

    def __init__(self, group: str, token: str, received: int) -> None:
        self.group = group
        self.token = token
        self.received = received  # the last number the client has

    def __repr__(self) -> str:  # the token is a key to someone's place: never in a log
        return f"ResumeRequest(group={self.group!r}, received={self.received})"


def bad_session(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.BAD_SESSION, detail)


def _whole(argument: Argument, what: str, error: RemoteError) -> int:
    """A whole number of at least 0 as i, h, or an integral f or d (Pd sends f)."""
    value = argument.value
    if (
        argument.tag not in _WHOLE
        or not isinstance(value, (int, float))
        or value != value  # NaN
        or value in (float("inf"), float("-inf"))
        or value != int(value)
        or value < 0
    ):
        raise RemoteError(error.code, f"{what}: {error.detail}", fatal=error.fatal)
    return int(value)


def read_session_request(message: bytes) -> SessionRequest:
    """The seconds `/oscrouter/session ,i seconds` asks for, and what `,is seconds unit` counts
    ("packets", the default, or "messages")."""
    arguments = parse_arguments(message)
    usage = "/oscrouter/session takes the seconds to keep the place (i, 0 or more)"
    unit = PACKETS
    if len(arguments) == 2 and arguments[1].tag == "s":
        unit = str(arguments[1].value)
        if unit not in (PACKETS, MESSAGES):
            counted = 'what a session counts is "packets" or "messages"'
            raise bad_session(f"{counted}, not {unit[:40]!r}")
        arguments = arguments[:1]
    if len(arguments) != 1:
        raise bad_session(f'{usage}, and what it counts ("packets" or "messages")')
    seconds = _whole(arguments[0], "seconds", bad_session(usage))
    return SessionRequest(seconds, unit == MESSAGES)


def read_ack(message: bytes) -> int:
    """The number `/oscrouter/session/ack ,i n` acknowledges."""
    return _one_whole(message, "n", "/oscrouter/session/ack takes the last number received")


def _one_whole(message: bytes, what: str, usage: str) -> int:
    """The one whole number of 0 or more that `message` carries, or `bad_session`."""
    arguments = parse_arguments(message)
    refusal = bad_session(f"{usage} (i, 0 or more)")
    if len(arguments) != 1:
        raise refusal
    return _whole(arguments[0], what, refusal)


def read_resume(message: bytes) -> ResumeRequest:
    """`/oscrouter/session/resume ,ssi group token n`; a malformed one is `resume_expired`
    (the client registers instead, as for any resume that cannot be done)."""
    arguments = parse_arguments(message)
    usage = RemoteError(
        ErrorCode.RESUME_EXPIRED,
        "/oscrouter/session/resume takes group (s), token (s) and the last number received (i)",
    )
    if (
        len(arguments) != 3
        or not isinstance(arguments[0].value, str)
        or not isinstance(arguments[1].value, str)
    ):
        raise usage
    return ResumeRequest(arguments[0].value, arguments[1].value, _whole(arguments[2], "n", usage))


def resume_group(packet: bytes) -> str | None:
    """The group a resume names, for --workers to find its worker; None when `packet` is not a
    well-formed resume (the hub answers it, wherever it is)."""
    if not packet.startswith(RESUME_PREFIX):
        return None
    try:
        validate_packet(packet)
        return read_resume(packet).group
    except RemoteError:
        return None


def session_reply(token: str, seconds: int) -> bytes:
    """`/oscrouter/session ,si token seconds` (`"" 0`: no session)."""
    return build_message(SESSION, ("s", token), ("i", seconds))


def resumed_message(received: int) -> bytes:
    """`/oscrouter/session/resumed ,i n`: what follows is numbered from n + 1."""
    return build_message(SESSION_RESUMED, ("i", received))
