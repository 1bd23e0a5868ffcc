"""Reading the control messages clients send: register and private (PROTOCOL.md §3).

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from pythonosc.parsing import osc_types

from .errors import ErrorCode, RemoteError
from .osc import parse_arguments, printable
from .routing import name_problem

__all__ = [
    "PING",
    "PRIVATE",
    "REGISTER",
    "PrivateRequest",
    "RegisterRequest",
    "read_private",
    "read_register",
]

REGISTER = b"/oscrouter/register\x00"
PRIVATE = b"/oscrouter/private\x00"
PING = b"/oscrouter/ping\x00"
_STRING_TAGS = ("s", "S")
_ID_TAGS = ("i", "h", "f", "d")


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
    """Read a validated register message; extra arguments are ignored (PROTOCOL.md §3)."""
    args = parse_arguments(message)
    if len(args) < 4:
        raise _bad_register(f"{len(args)} arguments")
    texts: list[str] = []
    for arg in args[:4]:
        if arg.tag not in _STRING_TAGS or not isinstance(arg.value, str):
            raise _bad_register(f"argument {len(texts) + 1} has type {arg.tag!r}, not a string")
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
    assert isinstance(target, str) and isinstance(address, str)
    return PrivateRequest(target, printable(address), message, args[0].start, args[0].end)
