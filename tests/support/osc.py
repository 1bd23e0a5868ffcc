"""Building OSC packets for tests, including the ones python-osc cannot build."""

from __future__ import annotations

import struct

from pythonosc.osc_message_builder import OscMessageBuilder

__all__ = ["IMMEDIATELY", "bundle", "msg", "osc_string", "raw_message", "register"]


def osc_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw + b"\x00" * (4 - len(raw) % 4)


def raw_message(address: str, tags: str = ",", payload: bytes = b"") -> bytes:
    """A message from its parts, for packets python-osc cannot build (S, c, r, m, I, ...)."""
    return osc_string(address) + osc_string(tags) + payload


def msg(address: str, *args: str | bytes | int | float | bool | None) -> bytes:
    """A message with python-osc's type inference: int -> i, float -> f, str -> s, bytes -> b."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


def bundle(timetag: bytes, *elements: bytes) -> bytes:
    parts = [b"#bundle\x00", timetag]
    for element in elements:
        parts += [struct.pack(">i", len(element)), element]
    return b"".join(parts)


IMMEDIATELY = b"\x00\x00\x00\x00\x00\x00\x00\x01"


def register(
    user: str,
    group: str = "band",
    random_id: int | None = 1,
    *,
    password: str = "pw",
    group_password: str = "gpw",
) -> bytes:
    args: list[str | int] = [user, password, group, group_password]
    if random_id is not None:
        args.append(random_id)
    return msg("/oscrouter/register", *args)
