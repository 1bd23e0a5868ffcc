"""What nodes send each other over Redis pub/sub, as bytes: packets for a group, presence
events, failed logins. Pure code.

Names cannot hold control characters (docs/protocol.md §3), so the unit separator (0x1F) joins
the text fields; packets are length-prefixed, so any bytes pass.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "SEP",
    "GroupTraffic",
    "LoginFailure",
    "PresenceEvent",
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
class GroupTraffic:
    """Packets one node's user sent to a group (`target` ""), or a private message to
    `target` (one packet, already naming its sender)."""

    node: str
    sender: str
    target: str
    packets: list[bytes]


def _head(kind: bytes, node: str, name: str) -> bytes:
    text = f"{node}{SEP}{name}".encode()
    return kind + _LENGTH.pack(len(text)) + text


def encode_broadcast(node: str, sender: str, packets: list[bytes]) -> bytes:
    parts = [_head(_BROADCAST, node, sender)]
    for packet in packets:
        parts += [_LENGTH.pack(len(packet)), packet]
    return b"".join(parts)


def encode_private(node: str, target: str, message: bytes) -> bytes:
    return b"".join((_head(_PRIVATE, node, target), _LENGTH.pack(len(message)), message))


def decode_traffic(data: bytes) -> GroupTraffic:
    """Raise ValueError for what no node sent."""
    kind = data[:1]
    if kind not in (_BROADCAST, _PRIVATE) or len(data) < 5:
        raise ValueError("not group traffic")
    (size,) = _LENGTH.unpack_from(data, 1)
    end = 5 + size
    node, sep, name = data[5:end].decode().partition(SEP)
    if not sep:
        raise ValueError("no node in group traffic")
    packets: list[bytes] = []
    while end < len(data):
        if end + 4 > len(data):
            raise ValueError("truncated packet length")
        (size,) = _LENGTH.unpack_from(data, end)
        start, end = end + 4, end + 4 + size
        if end > len(data):
            raise ValueError("truncated packet")
        packets.append(data[start:end])
    if kind == _BROADCAST:
        return GroupTraffic(node, name, "", packets)
    if len(packets) != 1:
        raise ValueError("a private message is one packet")
    return GroupTraffic(node, "", name, packets)


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
