"""OSC packets: validation of what clients send, and the router's own messages.

The router forwards packets byte for byte (PROTOCOL.md §2), so validation only walks a packet
to prove that it is well formed; it decodes nothing it does not need. The walk is on the hot path
and is written for speed: a type tag string made of fixed-size tags only (the common case:
`,iff`, `,sf` aside) is checked with one cached size lookup.

Values of the router's own control messages (register, private) are decoded, and the messages
the router sends are built, with python-osc's value primitives.

Pure code: no sockets, no event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from pythonosc.parsing import osc_types

from .errors import ErrorCode, RemoteError

__all__ = [
    "BUNDLE_HEADER",
    "CONTROL_PREFIX",
    "MAX_BUNDLE_DEPTH",
    "Argument",
    "build_bundle",
    "build_message",
    "message_address",
    "parse_arguments",
    "printable",
    "split_bundle_controls",
    "validate_packet",
]

BUNDLE_HEADER = b"#bundle\x00"
CONTROL_PREFIX = b"/oscrouter/"
# Bundles inside bundles inside ...: real clients nest one or two levels. The limit keeps the
# validating walk's recursion shallow whatever a peer sends.
MAX_BUNDLE_DEPTH = 8

# Bytes each fixed-size type tag takes in the argument data (OSC 1.0 and the 1.0 "nonstandard"
# tags every implementation knows). 's', 'S' and 'b' have a size of their own.
_FIXED_SIZE = {
    ord("i"): 4,
    ord("f"): 4,
    ord("c"): 4,
    ord("r"): 4,
    ord("m"): 4,
    ord("h"): 8,
    ord("t"): 8,
    ord("d"): 8,
    ord("T"): 0,
    ord("F"): 0,
    ord("N"): 0,
    ord("I"): 0,
}
_STRING_TAGS = (ord("s"), ord("S"))
_BLOB_TAG = ord("b")
_ARRAY_OPEN = ord("[")
_ARRAY_CLOSE = ord("]")
_VARIABLE = -1

# Type tag string -> total argument size, or _VARIABLE when a string or blob is among the tags.
# Bounded so that a peer sending endless distinct tag strings cannot grow it.
_tag_cache: dict[bytes, int] = {}
_TAG_CACHE_LIMIT = 4096


def _invalid(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.PACKET_INVALID, detail)


def _after_string(data: bytes, start: int, end: int, base: int, what: str) -> tuple[int, int]:
    """Return (index of the NUL, index after the padding) of the OSC string at `start`.

    Padding is counted from `base`, where the packet begins: inside a bundle a packet starts at a
    multiple of four from the bundle, and so does every string in it.
    """
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise _invalid(f"{what} is not NUL-terminated")
    return nul, nul + 4 - ((nul - base) & 3)


def _tags_size(tags: bytes) -> int:
    size = _tag_cache.get(tags)
    if size is not None:
        return size
    size = 0
    depth = 0
    for tag in tags:
        fixed = _FIXED_SIZE.get(tag)
        if fixed is not None:
            size += fixed
        elif tag in _STRING_TAGS or tag == _BLOB_TAG:
            size = _VARIABLE
            break
        elif tag == _ARRAY_OPEN:
            depth += 1
        elif tag == _ARRAY_CLOSE:
            depth -= 1
            if depth < 0:
                raise _invalid("']' without '[' in type tags")
        else:
            raise _invalid(f"unknown type tag {chr(tag)!r}")
    if size != _VARIABLE and depth != 0:
        raise _invalid("'[' without ']' in type tags")
    if len(_tag_cache) >= _TAG_CACHE_LIMIT:
        _tag_cache.clear()
    _tag_cache[tags] = size
    return size


def _walk_arguments(data: bytes, tags: bytes, pos: int, end: int, base: int) -> int:
    """Walk arguments of variable size; return the index after the last one."""
    depth = 0
    for tag in tags:
        fixed = _FIXED_SIZE.get(tag)
        if fixed is not None:
            pos += fixed
        elif tag in _STRING_TAGS:
            if pos >= end:
                raise _invalid("string argument runs past the end of the packet")
            pos = _after_string(data, pos, end, base, "string argument")[1]
        elif tag == _BLOB_TAG:
            if pos + 4 > end:
                raise _invalid("blob size runs past the end of the packet")
            size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
            if size < 0:
                raise _invalid("blob with a negative size")
            pos += 4 + size + (-size & 3)
        elif tag == _ARRAY_OPEN:
            depth += 1
        elif tag == _ARRAY_CLOSE:
            depth -= 1
            if depth < 0:
                raise _invalid("']' without '[' in type tags")
        else:
            raise _invalid(f"unknown type tag {chr(tag)!r}")
        if pos > end:
            raise _invalid("arguments run past the end of the packet")
    if depth != 0:
        raise _invalid("'[' without ']' in type tags")
    return pos


def _validate_message(data: bytes, start: int, end: int) -> bool:
    """Check one message in data[start:end]; return True if it is a control message."""
    if data[start] != 0x2F:  # '/'
        raise _invalid("address does not start with '/'")
    nul, pos = _after_string(data, start, end, start, "address")
    if pos > end:
        raise _invalid("address padding runs past the end of the packet")
    if pos < end:
        if data[pos] != 0x2C:  # ','
            raise _invalid("type tag string does not start with ','")
        tags_nul, args = _after_string(data, pos, end, start, "type tag string")
        tags = data[pos + 1 : tags_nul]
        size = _tags_size(tags)
        if size == _VARIABLE:
            args = _walk_arguments(data, tags, args, end, start)
        else:
            args += size
        if args > end:
            raise _invalid("arguments run past the end of the packet")
        if args < end:
            raise _invalid(f"{end - args} bytes left over after the last argument")
    # else: a message with no type tag string, as OSC 1.0 allows for old senders: no arguments.
    return data.startswith(CONTROL_PREFIX, start, nul)


def _validate_bundle(data: bytes, start: int, end: int, depth: int) -> bool:
    if depth >= MAX_BUNDLE_DEPTH:
        raise _invalid(f"bundles nested deeper than {MAX_BUNDLE_DEPTH} levels")
    if end - start < 16 or not data.startswith(BUNDLE_HEADER, start):
        raise _invalid("bundle without '#bundle' header and time tag")
    has_control = False
    pos = start + 16
    while pos < end:
        if pos + 4 > end:
            raise _invalid("bundle element size runs past the end of the bundle")
        size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
        pos += 4
        if size <= 0 or size & 3 or pos + size > end:
            raise _invalid(f"bundle element of size {size} does not fit in the bundle")
        if _validate_element(data, pos, pos + size, depth + 1):
            has_control = True
        pos += size
    return has_control


def _validate_element(data: bytes, start: int, end: int, depth: int) -> bool:
    first = data[start]
    if first == 0x2F:  # '/'
        return _validate_message(data, start, end)
    if first == 0x23:  # '#'
        return _validate_bundle(data, start, end, depth)
    raise _invalid("packet is neither a message ('/') nor a bundle ('#bundle')")


def validate_packet(packet: bytes) -> bool:
    """Check that `packet` is one well-formed OSC message or bundle (PROTOCOL.md §2).

    Return True if it is, or contains, a message under `/oscrouter/`. Raise `RemoteError`
    with code `packet_invalid` otherwise; nothing else is ever raised.
    """
    if not packet:
        raise _invalid("empty packet")
    if len(packet) & 3:
        raise _invalid(f"packet size {len(packet)} is not a multiple of 4")
    return _validate_element(packet, 0, len(packet), 0)


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


def split_bundle_controls(bundle: bytes) -> tuple[list[bytes], bytes | None]:
    """Take the `/oscrouter/` messages out of a validated bundle (PROTOCOL.md §3).

    Return the control messages in the order they appear (depth first) and the bundle rebuilt
    from everything else with the same time tags, or None when nothing else is left.
    """
    controls: list[bytes] = []
    kept: list[bytes] = []
    pos = 16
    while pos < len(bundle):
        size = int.from_bytes(bundle[pos : pos + 4], "big")
        element = bundle[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if element.startswith(BUNDLE_HEADER):
            inner_controls, rest = split_bundle_controls(element)
            controls.extend(inner_controls)
            if rest is not None:
                kept.append(rest)
        elif element.startswith(CONTROL_PREFIX):
            controls.append(element)
        else:
            kept.append(element)
    if not kept:
        return controls, None
    return controls, build_bundle(bundle[8:16], kept)


def build_bundle(timetag: bytes, elements: list[bytes]) -> bytes:
    parts = [BUNDLE_HEADER, timetag]
    for element in elements:
        parts.append(len(element).to_bytes(4, "big"))
        parts.append(element)
    return b"".join(parts)


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
    others are returned with value None. Raise `RemoteError(packet_invalid)` on text that is
    not UTF-8.
    """
    _, pos = _after_string(message, 0, len(message), 0, "address")
    if pos >= len(message):
        return []
    tags_nul, pos = _after_string(message, pos, len(message), 0, "type tag string")
    arguments: list[Argument] = []
    for tag in message[message.index(b",") + 1 : tags_nul].decode("ascii"):
        start = pos
        value: object = None
        try:
            if tag in "sS":
                value, pos = osc_types.get_string(message, pos)
            elif tag == "i":
                value, pos = osc_types.get_int(message, pos)
            elif tag == "h":
                value, pos = osc_types.get_int64(message, pos)
            elif tag == "f":
                value, pos = osc_types.get_float(message, pos)
            elif tag == "d":
                value, pos = osc_types.get_double(message, pos)
            elif tag == "b":
                size = int.from_bytes(message[pos : pos + 4], "big")
                pos += 4 + size + (-size & 3)
            else:
                pos += _FIXED_SIZE.get(ord(tag), 0)
        except UnicodeDecodeError as exc:
            raise _invalid("string argument is not UTF-8") from exc
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
