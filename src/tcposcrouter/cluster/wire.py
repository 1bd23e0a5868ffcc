"""What nodes send each other over Redis pub/sub, as bytes: packets for a group (to each node
that has users of the group, on that node's own channel), presence events, failed logins.
Pure code.

Names cannot hold control characters (docs/protocol.md §3), so the unit separator (0x1F) joins
the text fields; packets are length-prefixed, so any bytes pass.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "SEP",
    "LoginFailure",
    "PresenceEvent",
    "Traffic",
    "decode_failure",
    "decode_presence",
    "decode_traffic",
    "encode_broadcast",
    "encode_failure",
    "encode_private",
]

SEP = "\x1f"
_BROADCAST, _PRIVATE = b"B", b"P"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class Traffic:
    """Packets one user sent to a group (`private` False: `name` is the sender), or a private
    message to the user `name` (one packet, already naming its sender)."""

    group: str
    name: str
    private: bool
    packets: list[bytes]


def encode_broadcast(group: str, sender: str, packets: list[bytes]) -> bytes:
    return _record(_BROADCAST, group, sender, packets)


def encode_private(group: str, target: str, message: bytes) -> bytes:
    return _record(_PRIVATE, group, target, [message])


def _record(kind: bytes, group: str, name: str, packets: list[bytes]) -> bytes:
    text = f"{group}{SEP}{name}".encode()
    parts = [kind, _LENGTH.pack(len(text)), text, _LENGTH.pack(len(packets))]
    for packet in packets:
        parts += [_LENGTH.pack(len(packet)), packet]
    return b"".join(parts)


def decode_traffic(data: bytes) -> list[Traffic]:
    """The records of one message (records joined end to end, as a node publishes everything
    one turn of its loop had for another node); raise ValueError for what no node sent."""
    records: list[Traffic] = []
    at, end = 0, len(data)
    try:
        while at < end:
            kind = data[at : at + 1]
            if kind not in (_BROADCAST, _PRIVATE):
                raise ValueError("not a traffic record")
            (size,) = _LENGTH.unpack_from(data, at + 1)
            text_end = at + 5 + size
            if text_end > end:
                raise ValueError("truncated record")
            group, sep, name = data[at + 5 : text_end].decode().partition(SEP)
            if not sep:
                raise ValueError("no group in a traffic record")
            (count,) = _LENGTH.unpack_from(data, text_end)
            at = text_end + 4
            packets: list[bytes] = []
            for _ in range(count):
                (size,) = _LENGTH.unpack_from(data, at)
                at += 4
                if at + size > end:
                    raise ValueError("truncated packet")
                packets.append(data[at : at + size])
                at += size
            if kind == _PRIVATE and len(packets) != 1:
                raise ValueError("a private message is one packet")
            records.append(Traffic(group, name, kind == _PRIVATE, packets))
    except struct.error:
        raise ValueError("truncated record") from None
    return records


@dataclass(frozen=True)
class PresenceEvent:
    """`user` of `group` joined ("J") or left ("L") on `node`. The store's scripts publish
    these (see store.py), one per change of that node's presence."""

    kind: str
    node: str
    group: str
    user: str


def decode_presence(data: bytes) -> PresenceEvent:
    fields = data.decode().split(SEP)
    if len(fields) != 4 or fields[0] not in ("J", "L"):
        raise ValueError("not a presence event")
    return PresenceEvent(*fields)


@dataclass(frozen=True)
class LoginFailure:
    node: str
    address: str
    group: str
    user: str


def encode_failure(failure: LoginFailure) -> bytes:
    return SEP.join((failure.node, failure.address, failure.group, failure.user)).encode()


def decode_failure(data: bytes) -> LoginFailure:
    fields = data.decode().split(SEP)
    if len(fields) != 4:
        raise ValueError("not a login failure")
    return LoginFailure(*fields)
