"""Building and reading the router's own messages (docs/protocol.md §3, §4).

What the router sends (register replies, user lists, errors) is built here, and the control
messages clients send (register, private) are read here, with python-osc's value primitives.
Not on the hot path: a forwarded packet is never decoded. Shared by the router and the client.

Pure code: no sockets, no event loop.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pythonosc.parsing import osc_types

from ..errors import ErrorCode, RemoteError

__all__ = [
    "BUNDLE_HEADER",
    "CONTROL_PREFIX",
    "MAX_NAME_LENGTH",
    "NTP_UNIX_OFFSET",
    "NUMBER_READERS",
    "PING",
    "PRIVATE",
    "REGISTER",
    "TIME",
    "Argument",
    "PrivateRequest",
    "RegisterRequest",
    "build_bundle",
    "build_message",
    "error_message",
    "message_address",
    "name_problem",
    "osc_string",
    "packet_summary",
    "parse_arguments",
    "printable",
    "read_private",
    "read_register",
    "read_string",
    "read_time_request",
    "register_message",
    "time_reply",
    "time_tag",
    "unix_time",
    "user_list_message",
    "user_list_of",
]

BUNDLE_HEADER = b"#bundle\x00"
CONTROL_PREFIX = b"/oscrouter/"
REGISTER = b"/oscrouter/register\x00"
PRIVATE = b"/oscrouter/private\x00"
PING = b"/oscrouter/ping\x00"
TIME = b"/oscrouter/time\x00"
# Seconds from the NTP era (1900) to the Unix epoch (1970): OSC time tags count from 1900.
NTP_UNIX_OFFSET = 2_208_988_800
_TIME_REQUEST = TIME + b",t\x00\x00"
_TIME_REPLY = TIME + b",ttt\x00\x00\x00\x00"
MAX_NAME_LENGTH = 64
_STRING_TAGS = ("s", "S")
_ID_TAGS = ("i", "h", "f", "d")
_REGISTER_FIELDS = ("user name", "user password", "group name", "group password")
# Argument sizes of the tags parse_arguments does not decode (strings, numbers and blobs are).
_OTHER_SIZES = {"c": 4, "r": 4, "m": 4, "t": 8}

# The readers of the numeric arguments, by type tag: (the bytes, where) -> (value, after).
# Shared by the router's reading of control messages and the clients' (osc/reading.py).
NUMBER_READERS: dict[str, Callable[[bytes, int], tuple[Any, int]]] = {
    "i": osc_types.get_int,
    "h": osc_types.get_int64,
    "f": osc_types.get_float,
    "d": osc_types.get_double,
}


def _invalid(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.PACKET_INVALID, detail)


def read_string(data: bytes, start: int) -> tuple[bytes, int]:
    """The bytes of the OSC string at `start` of a validated message (without its NUL), and the
    index after its padding. Decoding them is the caller's: the router reads UTF-8, clients
    UTF-8 or else Latin-1 (reading.py)."""
    nul = data.index(b"\x00", start)
    return data[start:nul], nul + 4 - (nul & 3)


def _after_string(data: bytes, start: int) -> int:
    """The index after the padding of the OSC string at `start` of a validated message."""
    return read_string(data, start)[1]


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a user or group name (docs/protocol.md §3), or None if it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    # A printable name has no control character: the walk below only for the others (a storm
    # of registers reads two names each).
    if not name.isprintable() and any(unicodedata.category(char) == "Cc" for char in name):
        return "contains a control character"
    return None


def printable(text: str, limit: int = 80) -> str:
    """`text` made safe for a log line or an error reply: no control characters, bounded."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def message_address(message: bytes) -> str:
    """The address of a validated message, for logs and error texts."""
    end = message.find(b"\x00")
    return printable(message[:end].decode("utf-8", "replace"))


def packet_summary(packet: bytes) -> str:
    """A validated packet in a few words, for the debug log: never its arguments."""
    if packet[:1] == b"#":
        return f"bundle of {len(packet)} bytes"
    return f"{message_address(packet)} ({len(packet)} bytes)"


@dataclass(frozen=True)
class Argument:
    """One decoded argument of a control message, with where its bytes are in the message."""

    tag: str
    value: object
    start: int
    end: int


def parse_arguments(message: bytes) -> list[Argument]:
    """Decode the arguments of a validated control message.

    Only the types a control message can sensibly carry are decoded (strings, numbers); the
    others are returned with value None. A string that is not UTF-8 is returned as its bytes:
    the router reads its own fields as UTF-8 and says so where one is not (docs/protocol.md §2).
    """
    pos = _after_string(message, 0)
    if pos >= len(message):
        return []
    tags_nul = message.index(b"\x00", pos)
    pos = _after_string(message, pos)
    arguments: list[Argument] = []
    for tag in message[message.index(b",") + 1 : tags_nul].decode("ascii"):
        start = pos
        value: object = None
        try:
            if tag in "sS":
                raw, pos = read_string(message, pos)
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    value = raw
            elif (number := NUMBER_READERS.get(tag)) is not None:
                value, pos = number(message, pos)
            elif tag == "b":
                size = int.from_bytes(message[pos : pos + 4], "big")
                pos += 4 + size + (-size & 3)
            else:
                pos += _OTHER_SIZES.get(tag, 0)
        except osc_types.ParseError as exc:  # cannot happen after validation; kept as a guard
            raise _invalid(str(exc)) from exc
        arguments.append(Argument(tag, value, start, pos))
    return arguments


def _write_argument(tag: str, value: object) -> bytes:
    if tag == "s" and isinstance(value, str):
        return osc_types.write_string(value)
    if tag == "i" and isinstance(value, int):
        return osc_types.write_int(value)
    if tag == "h" and isinstance(value, int):
        return osc_types.write_int64(value)
    if tag == "f" and isinstance(value, float):
        return osc_types.write_float(value)
    if tag == "d" and isinstance(value, float):
        return osc_types.write_double(value)
    raise TypeError(f"cannot write {value!r} with type tag {tag!r}")


def build_message(address: str, *arguments: tuple[str, object]) -> bytes:
    """Build one OSC message from (type tag, value) pairs; tags s, i, h, f and d."""
    tags = "," + "".join(tag for tag, _ in arguments)
    parts = [osc_types.write_string(address), osc_types.write_string(tags)]
    parts.extend(_write_argument(tag, value) for tag, value in arguments)
    return b"".join(parts)


def build_bundle(timetag: bytes, elements: list[bytes]) -> bytes:
    parts = [BUNDLE_HEADER, timetag]
    for element in elements:
        parts.append(len(element).to_bytes(4, "big"))
        parts.append(element)
    return b"".join(parts)


def register_message(
    user: str, user_password: str, group: str, group_password: str, random_id: int = 0
) -> bytes:
    """`/oscrouter/register ,ssssi`, as a client sends it."""
    return build_message(
        "/oscrouter/register",
        ("s", user),
        ("s", user_password),
        ("s", group),
        ("s", group_password),
        ("i", random_id),
    )


def osc_string(text: str) -> bytes:
    """`text` as an OSC string: UTF-8, NUL-terminated, padded to four bytes."""
    return osc_types.write_string(text)


_USER_LIST = osc_string("/oscrouter/userlist")


def user_list_message(names: list[str]) -> bytes:
    """`/oscrouter/userlist ,s...` of `names`."""
    return user_list_of([osc_string(name) for name in names])


def user_list_of(osc_names: list[bytes]) -> bytes:
    """`/oscrouter/userlist ,s...` of names already written as OSC strings: every join and
    leave makes one for its group (a storm of 1,000 registers, a thousand of them), and the
    directory keeps each user's name written once (core/directory.py)."""
    return b"".join([_USER_LIST, osc_string("," + "s" * len(osc_names)), *osc_names])


def error_message(code: str, detail: str) -> bytes:
    """`/oscrouter/error ,ss code detail` (docs/protocol.md §4)."""
    return build_message("/oscrouter/error", ("s", code), ("s", detail))


@dataclass(frozen=True)
class RegisterRequest:
    user: str
    user_password: str
    group: str
    group_password: str
    random_id: tuple[str, object]  # (type tag, value) as the client sent it; ("i", 0) if missing

    def __repr__(self) -> str:  # never show a password, even in a traceback
        return f"RegisterRequest(user={self.user!r}, group={self.group!r})"

    def reply_address(self) -> str:
        # The randomId as the original router wrote it: integers in decimal, floats as str().
        return f"/oscrouter/register/{self.user}/{self.random_id[1]}"


def _bad_register(detail: str) -> RemoteError:
    return RemoteError(
        ErrorCode.BAD_REGISTER,
        f"{detail}; expected /oscrouter/register userName userPassword groupName "
        "groupPassword [randomId]",
        fatal=True,
    )


def read_register(message: bytes) -> RegisterRequest:
    """Read a validated register message; extra arguments are ignored (docs/protocol.md §3)."""
    args = parse_arguments(message)
    if len(args) < 4:
        raise _bad_register(f"{len(args)} arguments")
    texts: list[str] = []
    for field, arg in zip(_REGISTER_FIELDS, args[:4], strict=True):
        if arg.tag not in _STRING_TAGS:
            raise _bad_register(f"argument {len(texts) + 1} has type {arg.tag!r}, not a string")
        if not isinstance(arg.value, str):
            raise _bad_register(f"the {field} is not UTF-8: send names and passwords in UTF-8")
        texts.append(arg.value)
    user, user_password, group, group_password = texts
    for what, name in (("user name", user), ("group name", group)):
        problem = name_problem(name)
        if problem is not None:
            raise _bad_register(f"the {what} {problem}")
    random_id: tuple[str, object] = ("i", 0)
    if len(args) >= 5:
        extra = args[4]
        if extra.tag not in _ID_TAGS:
            raise _bad_register(f"randomId has type {extra.tag!r}, not a number")
        random_id = (extra.tag, extra.value)
    return RegisterRequest(user, user_password, group, group_password, random_id)


@dataclass(frozen=True)
class PrivateRequest:
    target: str
    address: str
    message: bytes
    _target_start: int
    _target_end: int

    def as_sent_by(self, sender: str) -> bytes:
        """The message with the target's name replaced by the sender's; every other byte,
        the type tags included, unchanged."""
        return (
            self.message[: self._target_start]
            + osc_types.write_string(sender)
            + self.message[self._target_end :]
        )


def read_private(message: bytes) -> PrivateRequest:
    args = parse_arguments(message)
    if len(args) < 2 or args[0].tag not in _STRING_TAGS or args[1].tag not in _STRING_TAGS:
        raise RemoteError(
            ErrorCode.BAD_PRIVATE,
            "/oscrouter/private needs a target user name and an address as strings",
        )
    target, address = args[0].value, args[1].value
    if not isinstance(target, str):
        raise RemoteError(
            ErrorCode.BAD_PRIVATE, "the target user name is not UTF-8, as user names are"
        )
    if isinstance(address, bytes):  # forwarded as it came; only the log line reads it
        address = address.decode("utf-8", "replace")
    assert isinstance(address, str)
    return PrivateRequest(target, printable(address), message, args[0].start, args[0].end)


def time_tag(unix_seconds: float) -> bytes:
    """An OSC (NTP) time tag for a moment given in Unix seconds."""
    seconds = unix_seconds + NTP_UNIX_OFFSET
    whole = int(seconds)
    fraction = min(int((seconds - whole) * 2**32), 2**32 - 1)
    return whole.to_bytes(4, "big") + fraction.to_bytes(4, "big")


def unix_time(tag: bytes) -> float:
    """The moment an OSC (NTP) time tag names, in Unix seconds (the inverse of `time_tag`)."""
    seconds, fraction = struct.unpack(">II", tag)
    return float(seconds - NTP_UNIX_OFFSET + fraction / 2**32)


def read_time_request(message: bytes) -> bytes:
    """The client's time tag of `/oscrouter/time ,t clientTime`, as its 8 bytes."""
    if len(message) != len(_TIME_REQUEST) + 8 or not message.startswith(_TIME_REQUEST):
        raise RemoteError(
            ErrorCode.BAD_TIME, "/oscrouter/time needs exactly one time tag argument (,t)"
        )
    return message[len(_TIME_REQUEST) :]


def time_reply(client_time: bytes, received: bytes, sent: bytes) -> bytes:
    """`/oscrouter/time ,ttt clientTime serverReceive serverSend` (docs/protocol.md §9)."""
    return _TIME_REPLY + client_time + received + sent
