"""What nodes send each other over Redis pub/sub, as bytes: packets for a group (to each node
that has users of the group, on that node's own channel), presence events, failed logins, the
records of tempo and state changes the store's scripts publish; and the forms in which the
store keeps a group's timeline and state. Pure code.

Names cannot hold control characters (docs/protocol.md §3), so the unit separator (0x1F) joins
the text fields; packets are length-prefixed, so any bytes pass.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..core.tempo import Line

__all__ = [
    "SEP",
    "EnsembleRecord",
    "LoginFailure",
    "PresenceEvent",
    "Traffic",
    "decode_ensemble",
    "decode_failure",
    "decode_lines",
    "decode_presence",
    "decode_stored_state",
    "decode_traffic",
    "encode_broadcast",
    "encode_failure",
    "encode_lines",
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


# A timeline's line on the wall clock: t0, beat0, bpm, Q, playing.
_LINE = struct.Struct(">dddii")


def encode_lines(lines: list[Line]) -> bytes:
    """A timeline's lines (in force, then pending) as the store keeps them: on the wall clock,
    so that every node reads the same instants whatever its own clock's start."""
    return b"".join(
        _LINE.pack(line.wall_t0, line.beat0, line.bpm, line.quantum, line.playing) for line in lines
    )


def decode_lines(data: bytes) -> list[Line]:
    """Lines on the wall clock (`Line.on_router_clock` takes them to a router's)."""
    if not data or len(data) % _LINE.size or len(data) > 2 * _LINE.size:
        raise ValueError("not a timeline")
    return [Line(*fields) for fields in _LINE.iter_unpack(data)]


@dataclass(frozen=True)
class EnsembleRecord:
    """A change the store made, as its script published it: of a timeline ("T", `payload` its
    lines), or of a state ("S", `payload` the message kept; "C", the address cleared);
    `number` is the change's in the group's tempo or state, `node` where it was made, `sender`
    the user who made a state change."""

    kind: str
    number: int
    group: str
    node: str
    sender: str
    payload: bytes


def decode_ensemble(data: bytes) -> EnsembleRecord:
    fields = data.split(SEP.encode(), 5)
    if len(fields) != 6 or fields[0] not in (b"T", b"S", b"C"):
        raise ValueError("not a record of the ensemble channel")
    kind, number, group, node, sender, payload = fields
    return EnsembleRecord(
        kind.decode(), int(number), group.decode(), node.decode(), sender.decode(), payload
    )


def decode_stored_state(pairs: list[bytes]) -> list[tuple[int, str, bytes]]:
    """The state hash as HGETALL gives it (address, "seq:message", …): (seq, address, message)
    in the order the messages were last set."""
    if len(pairs) % 2:
        raise ValueError("not a state hash")
    kept: list[tuple[int, str, bytes]] = []
    for index in range(0, len(pairs), 2):
        seq, colon, message = pairs[index + 1].partition(b":")
        if not colon:
            raise ValueError("not a kept state message")
        kept.append((int(seq), pairs[index].decode(), message))
    kept.sort(key=lambda entry: entry[0])
    return kept
