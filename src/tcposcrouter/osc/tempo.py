"""The wire forms of a group's tempo and of `/oscrouter/info` (docs/protocol.md §11, §12): what
a client's `/oscrouter/tempo…` asks, read into numbers, and the messages the router sends.

Pure code.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from ..errors import ErrorCode, RemoteError
from .messages import Argument, build_message, osc_string, parse_arguments, time_tag, unix_time

__all__ = [
    "INFO",
    "INFO_PREFIX",
    "TEMPO",
    "TEMPO_ADDRESSES",
    "TEMPO_HEAD",
    "TEMPO_MESSAGE_SIZE",
    "TEMPO_PLAY",
    "TEMPO_RELATIVE",
    "TEMPO_SET",
    "PlayRequest",
    "TempoRequest",
    "bad_tempo",
    "info_message",
    "read_tempo_ask",
    "read_tempo_message",
    "read_tempo_play",
    "read_tempo_relative",
    "read_tempo_set",
    "relative_tempo_message",
    "tempo_message",
]

TEMPO = "/oscrouter/tempo"
TEMPO_SET = "/oscrouter/tempo/set"
TEMPO_PLAY = "/oscrouter/tempo/play"
# For clients that can read neither a time tag nor a double (Pd's [oscparse]): the line told
# as floats, relative to the moment it is sent (docs/protocol.md §11).
TEMPO_RELATIVE = "/oscrouter/tempo/relative"
TEMPO_ADDRESSES = frozenset({TEMPO, TEMPO_SET, TEMPO_PLAY, TEMPO_RELATIVE})
INFO = "/oscrouter/info"
# The bytes every `/oscrouter/info` request begins with: its address, NUL-padded.
INFO_PREFIX = osc_string(INFO)

# The address and type tags every `/oscrouter/tempo` the router sends begins with; its 8-byte
# time tag and 24 bytes of numbers follow.
TEMPO_HEAD = osc_string(TEMPO) + osc_string(",tddii")
TEMPO_MESSAGE_SIZE = len(TEMPO_HEAD) + 32
_NUMBERS = ("i", "h", "f", "d")


@dataclass(frozen=True)
class TempoRequest:
    """`/oscrouter/tempo/set bpm [atBeat [Q]]`: None where the client named nothing."""

    bpm: float
    at_beat: float | None
    quantum: int | None


@dataclass(frozen=True)
class PlayRequest:
    """`/oscrouter/tempo/play playing [atBeat]`."""

    playing: int
    at_beat: float | None


def bad_tempo(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.BAD_TEMPO, detail)


def read_tempo_ask(message: bytes) -> None:
    """`/oscrouter/tempo` asks for the group's tempo and carries nothing."""
    if parse_arguments(message):
        raise bad_tempo("/oscrouter/tempo asks for the tempo and takes no argument")


def read_tempo_set(message: bytes) -> TempoRequest:
    """`/oscrouter/tempo/set bpm`, `bpm atBeat` or `bpm atBeat Q` (numbers as d, f or i; Q an
    integer, as i or an integral f or d)."""
    arguments = parse_arguments(message)
    if not 1 <= len(arguments) <= 3:
        raise bad_tempo("/oscrouter/tempo/set takes bpm, or bpm atBeat, or bpm atBeat Q")
    bpm = _number(arguments[0], "bpm")
    at_beat = _number(arguments[1], "atBeat") if len(arguments) > 1 else None
    quantum = _integer(arguments[2], "Q") if len(arguments) > 2 else None
    return TempoRequest(bpm, at_beat, quantum)


def read_tempo_play(message: bytes) -> PlayRequest:
    """`/oscrouter/tempo/play playing` or `playing atBeat` (playing 1 or 0)."""
    arguments = parse_arguments(message)
    if not 1 <= len(arguments) <= 2:
        raise bad_tempo("/oscrouter/tempo/play takes playing (1 or 0), or playing atBeat")
    playing = _integer(arguments[0], "playing")
    if playing not in (0, 1):
        raise bad_tempo(f"playing must be 1 or 0, not {playing}")
    at_beat = _number(arguments[1], "atBeat") if len(arguments) > 1 else None
    return PlayRequest(playing, at_beat)


def _number(argument: Argument, name: str) -> float:
    value = argument.value
    if argument.tag not in _NUMBERS or not isinstance(value, (int, float)):
        raise bad_tempo(f"{name} must be a number (d, f or i), not type {argument.tag!r}")
    number = float(value)
    if not math.isfinite(number):
        raise bad_tempo(f"{name} must be finite")
    return number


def _integer(argument: Argument, name: str) -> int:
    number = _number(argument, name)
    if number != int(number):
        raise bad_tempo(f"{name} must be a whole number, not {number:g}")
    return int(number)


def tempo_message(t0_unix: float, beat0: float, bpm: float, quantum: int, playing: int) -> bytes:
    """`/oscrouter/tempo ,tddii T0 B0 bpm Q playing`: from the moment `t0_unix` (Unix seconds,
    sent as an OSC time tag) the group is at beat `beat0` and moves at `bpm`."""
    return TEMPO_HEAD + time_tag(t0_unix) + struct.pack(">ddii", beat0, bpm, quantum, playing)


def read_tempo_relative(message: bytes) -> bool:
    """`/oscrouter/tempo/relative ,i 1` (or 0; a whole f as Pd sends it)."""
    arguments = parse_arguments(message)
    if len(arguments) != 1:
        raise bad_tempo("/oscrouter/tempo/relative takes 1 (tell the tempo relative) or 0")
    flag = _integer(arguments[0], "relative")
    if flag not in (0, 1):
        raise bad_tempo(f"/oscrouter/tempo/relative takes 1 or 0, not {flag}")
    return flag == 1


def relative_tempo_message(
    beat: float, bpm: float, quantum: int, playing: int, in_seconds: float
) -> bytes:
    """`/oscrouter/tempo/relative ,ffiif beat bpm Q playing inSeconds`: `inSeconds` after this
    message was sent (0: at once) the group is at `beat` and moves at `bpm`."""
    return build_message(
        TEMPO_RELATIVE,
        ("f", beat),
        ("f", bpm),
        ("i", quantum),
        ("i", playing),
        ("f", in_seconds),
    )


def read_tempo_message(packet: bytes) -> tuple[float, float, float, int, int] | None:
    """(T0 in Unix seconds, B0, bpm, Q, playing) of an `/oscrouter/tempo ,tddii` the router
    sent; None for any other packet."""
    if len(packet) != TEMPO_MESSAGE_SIZE or not packet.startswith(TEMPO_HEAD):
        return None
    start = len(TEMPO_HEAD)
    beat, bpm, quantum, playing = struct.unpack(">ddii", packet[start + 8 :])
    return unix_time(packet[start : start + 8]), beat, bpm, quantum, playing


def info_message(version: str, features: list[str]) -> bytes:
    """`/oscrouter/info ,s… version feature…`."""
    tags = "," + "s" * (1 + len(features))
    parts = [INFO_PREFIX, osc_string(tags), osc_string(version)]
    parts.extend(osc_string(feature) for feature in features)
    return b"".join(parts)
