"""Moving a bundle's time tags between this machine's clock and the group's (the router's),
for `bridge --retime` (docs/protocol.md §9). Pure code: the offset is given.
"""

from __future__ import annotations

from ..osc.messages import BUNDLE_HEADER

__all__ = ["shift_time_tags"]

_IMMEDIATELY = b"\x00\x00\x00\x00\x00\x00\x00\x01"
_ERA = 2**64  # NTP time tags wrap here (in 2036), as 64-bit fixed point does


def shift_time_tags(packet: bytes, seconds: float) -> bytes:
    """`packet` with every bundle time tag in it (nested ones too) moved by `seconds`;
    "immediately" stays as it is, and so does a message, or anything that is not a whole bundle
    (it is passed on as it came: the router judges it)."""
    if not packet.startswith(BUNDLE_HEADER) or len(packet) < 16:
        return packet
    tag = packet[8:16]
    if tag != _IMMEDIATELY:
        fixed = (int.from_bytes(tag, "big") + round(seconds * 2**32)) % _ERA
        tag = fixed.to_bytes(8, "big")
    parts = [BUNDLE_HEADER, tag]
    position = 16
    while position + 4 <= len(packet):
        size = int.from_bytes(packet[position : position + 4], "big")
        element = packet[position + 4 : position + 4 + size]
        if len(element) != size:
            return packet  # a truncated bundle: not ours to mend
        parts += [packet[position : position + 4], shift_time_tags(element, seconds)]
        position += 4 + size
    if position != len(packet):
        return packet
    return b"".join(parts)
