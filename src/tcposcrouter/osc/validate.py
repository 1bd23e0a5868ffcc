"""Validating OSC packets, and taking control messages out of bundles (docs/protocol.md §2, §3).

The router forwards packets byte for byte (docs/protocol.md §2), so validation only walks a
packet to prove that it is well formed: every size and padding right, every string (address,
`s`, `S`) ended by a NUL. A string's bytes are not looked at: OSC 1.0 gives strings no encoding,
and real clients send UTF-8 (SuperCollider, Pd) or Latin-1 (osc-js); the router forwards either
as it came, and only the strings it reads itself must be UTF-8 (messages.py). The walk is on the
hot path and is written for speed: a type tag string made of fixed-size tags only (the common
case: `,iff`, `,sf` aside) is checked with one cached size lookup.

Pure code: no sockets, no event loop.
"""

from __future__ import annotations

import struct

from ..errors import ErrorCode, RemoteError
from .messages import BUNDLE_HEADER, CONTROL_PREFIX, build_bundle

__all__ = ["MAX_BUNDLE_DEPTH", "split_bundle_controls", "validate_packet"]

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

_INT32 = struct.Struct(">i")
# A type tag string compiled into its *plan*: the total argument size when every tag has a fixed
# size (the common case, `,iff`), else steps of (fixed bytes before, kind) where kind is a string,
# a blob, or the end. Cached per tag string, bounded so that a peer sending endless distinct
# tag strings cannot grow it.
_STRING, _BLOB, _END = 1, 2, 0
Steps = tuple[tuple[int, int], ...]
Plan = int | Steps
_plans: dict[bytes, Plan] = {}
_PLAN_CACHE_LIMIT = 4096


def _invalid(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.PACKET_INVALID, detail)


def _compile(tags: bytes) -> Plan:
    steps: list[tuple[int, int]] = []
    fixed = 0
    depth = 0
    for tag in tags:
        size = _FIXED_SIZE.get(tag)
        if size is not None:
            fixed += size
        elif tag in _STRING_TAGS:
            steps.append((fixed, _STRING))
            fixed = 0
        elif tag == _BLOB_TAG:
            steps.append((fixed, _BLOB))
            fixed = 0
        elif tag == _ARRAY_OPEN:
            depth += 1
        elif tag == _ARRAY_CLOSE:
            depth -= 1
            if depth < 0:
                raise _invalid("']' without '[' in type tags")
        else:
            raise _invalid(f"unknown type tag {chr(tag)!r}")
    if depth != 0:
        raise _invalid("'[' without ']' in type tags")
    plan: Plan = fixed
    if steps:
        steps.append((fixed, _END))
        plan = tuple(steps)
    if len(_plans) >= _PLAN_CACHE_LIMIT:
        _plans.clear()
    _plans[tags] = plan
    return plan


def _walk_arguments(
    data: bytes, plan: tuple[tuple[int, int], ...], pos: int, end: int, base: int
) -> int:
    """Walk arguments of variable size; return the index after the last one.

    Padding is counted from `base`, where the message begins: inside a bundle a message starts
    at a multiple of four from the bundle, and so does every string in it.
    """
    for fixed, kind in plan:
        pos += fixed
        if kind == _STRING:
            if pos >= end:
                raise _invalid("string argument runs past the end of the packet")
            nul = data.find(b"\x00", pos, end)
            if nul < 0:
                raise _invalid("string argument is not NUL-terminated")
            pos = nul + 4 - ((nul - base) & 3)
        elif kind == _BLOB:
            if pos + 4 > end:
                raise _invalid("blob size runs past the end of the packet")
            size = _INT32.unpack_from(data, pos)[0]
            if size < 0:
                raise _invalid("blob with a negative size")
            pos += 4 + size + (-size & 3)
        if pos > end:
            raise _invalid("arguments run past the end of the packet")
    return pos


# The header (address and type tags, with their padding) of the last message that was not
# simply fixed-size, with what it means: a stream of one address (a sensor, a pattern's notes)
# then skips both string scans. A packet that starts with these very bytes has this header.
_last_header = b"\x00"
_last_plan: Plan = 0
_last_control = False


def _validate_message(data: bytes, start: int, end: int) -> bool:
    """Check one message in data[start:end]; return True if it is a control message."""
    global _last_header, _last_plan, _last_control
    if data.startswith(_last_header, start, end):
        args = start + len(_last_header)
        plan, control = _last_plan, _last_control
    else:
        if data[start] != 0x2F:  # '/'
            raise _invalid("address does not start with '/'")
        nul = data.find(b"\x00", start, end)
        if nul < 0:
            raise _invalid("address is not NUL-terminated")
        control = data.startswith(CONTROL_PREFIX, start, nul)
        pos = nul + 4 - ((nul - start) & 3)
        if pos >= end:
            if pos > end:
                raise _invalid("address padding runs past the end of the packet")
            # A message with no type tag string, as OSC 1.0 allows for old senders: no arguments.
            return control
        if data[pos] != 0x2C:  # ','
            raise _invalid("type tag string does not start with ','")
        tags_nul = data.find(b"\x00", pos, end)
        if tags_nul < 0:
            raise _invalid("type tag string is not NUL-terminated")
        args = tags_nul + 4 - ((tags_nul - start) & 3)
        tags = data[pos + 1 : tags_nul]
        cached = _plans.get(tags)
        plan = _compile(tags) if cached is None else cached
        if args <= end:
            _last_header, _last_plan, _last_control = data[start:args], plan, control
    if isinstance(plan, int):
        args += plan
    else:
        args = _walk_arguments(data, plan, args, end, start)
    if args != end:
        if args > end:
            raise _invalid("arguments run past the end of the packet")
        raise _invalid(f"{end - args} bytes left over after the last argument")
    return control


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
        size = _INT32.unpack_from(data, pos)[0]
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
    """Check that `packet` is one well-formed OSC message or bundle (docs/protocol.md §2).

    Return True if it is, or contains, a message under `/oscrouter/`. Raise `RemoteError`
    with code `packet_invalid` otherwise; nothing else is ever raised.
    """
    if not packet:
        raise _invalid("empty packet")
    if len(packet) & 3:
        raise _invalid(f"packet size {len(packet)} is not a multiple of 4")
    return _validate_element(packet, 0, len(packet), 0)


def split_bundle_controls(bundle: bytes) -> tuple[list[bytes], bytes | None]:
    """Take the `/oscrouter/` messages out of a validated bundle (docs/protocol.md §3).

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
