"""Reading OSC packets into Python values, for the people at the other end: the client library,
`tcposcrouter-client listen` and the bridge's reports. The router itself never does this: it
forwards bytes (docs/protocol.md §2).

OSC 1.0 defines a string as bytes up to a NUL, without an encoding, and real clients differ:
SuperCollider, Pd and python-osc send UTF-8, osc-js (Strudel and many browser tools) one byte
per character below 256, which is Latin-1 (`'hello ü'` arrives as `68 65 6c 6c 6f 20 fc`). So
a string is read as UTF-8 where it is valid UTF-8, and as Latin-1 otherwise: one character per
byte, which never fails and shows osc-js's text as it was typed. The bytes themselves are always
there unchanged (`Packet.raw`).

Values are python-osc's: int (`i`, `h`, `r`), float (`f`, `d`), str (`s`, `S`, `c`), bytes
(`b`), a tuple of four ints (`m`), python-osc's time tag (`t`), True, False, None, infinity
(`I`), and lists for arrays.

Pure code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pythonosc.parsing import osc_types

from .messages import BUNDLE_HEADER, NUMBER_READERS, read_string

__all__ = ["Message", "decode_text", "messages_in", "read_message"]


# The arguments python-osc reads as they are, by type tag (strings, `r`, `c`, the ones without
# bytes and arrays are read below).
_READERS: dict[str, Callable[[bytes, int], tuple[Any, int]]] = {
    **NUMBER_READERS,
    "b": osc_types.get_blob,
    "m": osc_types.get_midi,
    "t": osc_types.get_timetag,
}


def decode_text(raw: bytes) -> str:
    """An OSC string's bytes as text: UTF-8 if they are UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(frozen=True)
class Message:
    address: str
    types: str  # the type tags, without the comma
    args: list[Any]


def _string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_string(data, pos)
    return decode_text(raw), pos


def read_message(raw: bytes) -> Message:
    """Read one OSC message; raise ValueError if it is not one (the router validated what it
    forwards, so from a router that means a bug)."""
    try:
        address, pos = _string(raw, 0)
        if pos >= len(raw):
            return Message(address, "", [])
        tags, pos = _string(raw, pos)
        if not tags.startswith(","):
            raise ValueError("the type tag string does not start with ','")
        args: list[Any] = []
        stack = [args]
        for tag in tags[1:]:
            value: Any
            if tag in "sS":
                value, pos = _string(raw, pos)
            elif (reader := _READERS.get(tag)) is not None:
                value, pos = reader(raw, pos)
            elif tag == "r":
                value, pos = osc_types.get_int(raw, pos)
                value &= 0xFFFFFFFF
            elif tag == "c":
                code, pos = osc_types.get_int(raw, pos)
                value = chr(code & 0x10FFFF)
            elif tag in "TFNI":
                value = {"T": True, "F": False, "N": None, "I": float("inf")}[tag]
            elif tag == "[":
                inner: list[Any] = []
                stack[-1].append(inner)
                stack.append(inner)
                continue
            elif tag == "]":
                if len(stack) < 2:
                    raise ValueError("']' without '['")
                stack.pop()
                continue
            else:
                raise ValueError(f"unknown type tag {tag!r}")
            stack[-1].append(value)
        return Message(address, tags[1:], args)
    except (osc_types.ParseError, IndexError) as error:
        raise ValueError(f"not an OSC message: {error}") from None


def messages_in(raw: bytes, time: bytes | None = None) -> list[tuple[bytes | None, Message]]:
    """Every message in a packet, with the time tag of the bundle it came in (None: a message
    on its own). Bundles inside bundles give their messages their own time tag."""
    if not raw.startswith(BUNDLE_HEADER):
        return [(time, read_message(raw))]
    if len(raw) < 16:
        raise ValueError("a bundle without its time tag")
    stamp = raw[8:16]
    found: list[tuple[bytes | None, Message]] = []
    pos = 16
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + 4], "big", signed=True)
        element = raw[pos + 4 : pos + 4 + size]
        if size <= 0 or len(element) != size:
            raise ValueError("a bundle element's size runs past the bundle")
        found += messages_in(element, stamp)
        pos += 4 + size
    return found
