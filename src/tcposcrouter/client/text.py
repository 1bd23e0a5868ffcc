"""OSC messages as text, for the command line: what `send` reads and what `listen` prints.

The syntax (the browser client page's too): an address, then arguments separated by spaces.
`42` is an int (`i`), `0.5` a float (`f`), `"two words"` or a bare word a string (`s`), `T` `F`
`N` true, false and nil. Any type python-osc writes by its tag and a colon: `i:7` `f:1`
`d:0.25` `h:9007199254740` `s:60` `b:cafe01` (blob, hex) `m:00903c7f` (MIDI, 4 bytes hex)
`r:ff0000ff` (colour, 4 bytes hex).

The printed form, one line per message (stable: scripts may read it): the address, the type
tags without the comma, the arguments — strings in double quotes with JSON's escapes (a string
that is not UTF-8 is read as Latin-1, as osc-js sends it), floats as Python prints them, blobs
as `b:` and hex. A message inside a bundle is prefixed with the
bundle's time, `@` and Unix seconds (`@now` for "immediately").
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..osc.messages import unix_time
from ..osc.reading import messages_in
from .protocol import IMMEDIATELY, Argument, build_message

__all__ = ["BadMessageText", "format_packet", "packet_records", "parse_message"]

_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?|[-+]?\d+[eE][-+]?\d+")
_TYPED = re.compile(r"([ifdhsbmr]):(.*)", re.DOTALL)
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


class BadMessageText(ValueError):
    """Text that is not a message in the syntax above; the message says what is wrong."""


def _hex(text: str, size: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise BadMessageText(f"not hex bytes: {text!r}") from None
    if size is not None and len(data) != size:
        raise BadMessageText(f"{text!r} is {len(data)} bytes, not {size}")
    return data


def _typed(tag: str, text: str) -> Argument:
    try:
        if tag == "i":
            return ("i", int(text))
        if tag == "h":
            return ("h", int(text))
        if tag in "fd":
            return (tag, float(text))
    except ValueError:
        raise BadMessageText(f"not a number for {tag}: {text!r}") from None
    if tag == "s":
        return ("s", text)
    if tag == "b":
        return ("b", _hex(text))
    if tag == "m":
        return ("m", tuple(_hex(text, 4)))
    return ("r", int.from_bytes(_hex(text, 4), "big"))  # "r"


def parse_argument(token: str, quoted: bool = False) -> Argument:
    if quoted:
        return ("s", token)
    typed = _TYPED.fullmatch(token)
    if typed:
        return _typed(typed[1], typed[2])
    if token in ("T", "F"):
        return token == "T"
    if token == "N":
        return None
    if _INT.fullmatch(token):
        return ("i", int(token))
    if _FLOAT.fullmatch(token):
        return ("f", float(token))
    return ("s", token)


def parse_message(words: list[str] | str) -> bytes:
    """A message from its words (a command line's arguments, split by the shell already) or
    from one line of text (where `"quoted words"` are one string)."""
    if isinstance(words, str):
        pairs = [
            (quoted if quoted is not None else bare, quoted is not None)
            for quoted, bare in (
                (None if m[1] is None else re.sub(r"\\(.)", r"\1", m[1]), m[2])
                for m in _TOKEN.finditer(words)
            )
        ]
    else:
        pairs = [(word, False) for word in words]
    if not pairs or pairs[0][1] or not pairs[0][0].startswith("/"):
        raise BadMessageText('a message starts with its address, which starts with "/"')
    address = pairs[0][0]
    return build_message(address, *(parse_argument(token, quoted) for token, quoted in pairs[1:]))


def _show(tag: str, value: Any) -> str:
    if tag in "sS":
        return json.dumps(value, ensure_ascii=False)
    if tag == "b":
        return "b:" + bytes(value).hex()
    if tag == "m":
        return "m:" + bytes(value).hex()
    if tag == "r":
        return "r:" + int(value).to_bytes(4, "big").hex()
    if tag in "TFNI":
        return tag
    if tag == "t":
        return f"t:{value}"
    return str(value)


def _bundle_time(tag: bytes | None) -> str | None:
    if tag is None:
        return None
    return "@now" if tag == IMMEDIATELY else f"@{unix_time(tag):.6f}"


def format_packet(raw: bytes) -> list[str]:
    """The lines `listen` prints for one packet. Strings that are not UTF-8 are read as
    Latin-1, as osc-js sends them (osc/reading.py)."""
    lines = []
    for tag, message in messages_in(raw):
        when = _bundle_time(tag)
        values = [
            _show(t, value) for t, value in zip(message.types, _flat(message.args), strict=False)
        ]
        line = " ".join([message.address, message.types, *values]).rstrip()
        lines.append(line if when is None else f"{when} {line}")
    return lines


def _flat(args: list[Any]) -> list[Any]:
    """Arguments in the order of their type tags, arrays opened (their brackets have no value:
    `[` and `]` are shown as they are)."""
    out: list[Any] = []
    for value in args:
        if isinstance(value, list):
            out += ["[", *_flat(value), "]"]
        else:
            out.append(value)
    return out


def packet_records(raw: bytes) -> list[dict[str, Any]]:
    """What `listen --json` prints for one packet: a JSON object per message."""
    records = []
    for stamp, message in messages_in(raw):
        when = _bundle_time(stamp)
        tags = message.types
        args: list[Any] = []
        for tag, value in zip(tags, _flat(message.args), strict=False):
            if tag in "bm":
                args.append({"hex": bytes(value).hex()})
            elif tag == "r":
                args.append({"rgba": int(value).to_bytes(4, "big").hex()})
            elif tag == "t":
                args.append(str(value))
            else:
                args.append(value)
        record: dict[str, Any] = {"address": message.address, "types": tags, "args": args}
        if when is not None:
            record["bundle_time"] = None if when == "@now" else float(when[1:])
        records.append(record)
    return records
