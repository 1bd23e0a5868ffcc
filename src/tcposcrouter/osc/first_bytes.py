"""What a byte stream speaks, told from its first byte: OSC in either framing, HTTP, or TLS.

Each port of the router speaks one of these, and clients point at the wrong one in their first
hour (a WebSocket URL at an OSC port, `tls://` at a plain port, an OSC program at the HTTP port).
The first byte tells them apart without waiting for more, because no two overlap:

* an OSC 1.0 length prefix of a packet under 16 MiB starts with 0x00 (docs/protocol.md §1);
* an OSC 1.1 SLIP stream starts with END (0xC0), or with the packet itself: '/' or '#';
* an HTTP request starts with its method and an HTTP response with "HTTP/": an upper-case
  letter, which as a length prefix would announce a packet of over a gigabyte;
* a TLS record starts with its content type, 20-23 (0x16 for a ClientHello, 0x15 for an alert).

Used by the router to answer a client at the wrong port in the client's own language, and by
the client library to say which port it reached. Pure code.
"""

from __future__ import annotations

import enum

__all__ = ["Speaks", "first_bytes_speak"]


class Speaks(enum.Enum):
    OSC_LENGTH_PREFIX = "OSC 1.0 (length prefix)"
    OSC_SLIP = "OSC 1.1 (SLIP)"
    HTTP = "HTTP"
    TLS = "TLS"
    UNKNOWN = "something else"


_TLS_RECORD_TYPES = frozenset(range(20, 24))  # change_cipher_spec, alert, handshake, data
_SLIP_STARTS = frozenset(b"\xc0/#")
_UPPER_CASE = frozenset(range(ord("A"), ord("Z") + 1))


def first_bytes_speak(data: bytes) -> Speaks | None:
    """What a stream that begins with `data` speaks; None while `data` is empty."""
    if not data:
        return None
    first = data[0]
    if first == 0:
        return Speaks.OSC_LENGTH_PREFIX
    if first in _SLIP_STARTS:
        return Speaks.OSC_SLIP
    if first in _UPPER_CASE:
        return Speaks.HTTP
    if first in _TLS_RECORD_TYPES:
        return Speaks.TLS
    return Speaks.UNKNOWN
