"""What the HTTP door checks in a request head before aiohttp reads a byte of it (pure).

aiohttp's own refusals echo what they refused: a request line over 8,190 bytes comes back in
the 400's body and goes to the console with a traceback — and a URL registration's request
line carries the user's and the group's passwords (docs/protocol.md §8). aiohttp also answers
an HTTP/0.9 request line ("GET /healthz", no version) as HTTP/0.9. So the door holds each head
until it has been checked here, and refuses with a fixed answer that repeats nothing of the
request:

* the request line must be `METHOD /target HTTP/1.0` or `HTTP/1.1` (origin form, visible ASCII,
  as every browser and WebSocket library sends): no version is 400, another version 505, a
  target past aiohttp's 8,190 bytes 414, anything else 400;
* every header line must be `name: value` without control characters (400), and none may pass
  8,190 bytes, nor the head 64 KiB (431);
* no request body: the port serves only GETs (a Transfer-Encoding or a Content-Length other
  than 0 is 400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_LINE", "MAX_REQUEST_HEAD", "HeadRefusal", "check_head", "check_partial_head"]

# aiohttp refuses a line longer than this (its max_line_size), echoing it: the door refuses first.
MAX_LINE = 8190
# A whole head (cookies and all) this long is no browser's.
MAX_REQUEST_HEAD = 64 * 1024

_REQUEST_LINE = re.compile(rb"([A-Z]{1,20}) (/[\x21-\x7e]*|\*) HTTP/1\.[01]\r?")
_WITHOUT_VERSION = re.compile(rb"[A-Z]{1,20} [\x21-\x7e]+\r?")
_OTHER_VERSION = re.compile(rb"[A-Z]{1,20} [\x21-\x7e]+ HTTP/(?!1\.[01]\r?\Z)[0-9.]+\r?")
# RFC 9110 §5.1 and §5.5: a token, a colon, then visible characters, spaces and tabs (and
# obs-text); no control character, no line folded onto the next.
# The port's pages and WebSocket are all GET: a body (or a length aiohttp would refuse, echoing
# it) is refused here. Content-Length: 0 is what some clients send with every GET.
_BODY_HEADER = re.compile(rb"(?i:transfer-encoding)\s*:|(?i:content-length)\s*:(?!\s*0*\s*\r?$)")
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r?")


@dataclass(frozen=True)
class HeadRefusal:
    status: int
    reason: str  # the status line's phrase
    said: str  # the plain-text body, and the log line's words

    def answer(self) -> bytes:
        body = (self.said + "\n").encode()
        return (
            f"HTTP/1.1 {self.status} {self.reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body


def _request_line(line: bytes) -> HeadRefusal | None:
    if len(line) > MAX_LINE:
        return HeadRefusal(414, "URI Too Long", "the request line is too long")
    if _REQUEST_LINE.fullmatch(line):
        return None
    if _WITHOUT_VERSION.fullmatch(line):
        return HeadRefusal(400, "Bad Request", "not an HTTP/1.x request (no version)")
    if _OTHER_VERSION.fullmatch(line):
        return HeadRefusal(505, "HTTP Version Not Supported", "this port speaks HTTP/1.1")
    return HeadRefusal(400, "Bad Request", "not an HTTP/1.x request line")


def _header_lines(lines: list[bytes]) -> HeadRefusal | None:
    """Header lines, the last of which may still be arriving (or be the head's blank end)."""
    if any(len(line) > MAX_LINE for line in lines):
        return HeadRefusal(431, "Request Header Fields Too Large", "a header line is too long")
    if not all(_HEADER_LINE.fullmatch(line) for line in lines[:-1] if line not in (b"", b"\r")):
        return HeadRefusal(400, "Bad Request", "a header line that is not name: value")
    if any(_BODY_HEADER.match(line) for line in lines[:-1]):
        return HeadRefusal(400, "Bad Request", "this port takes no request body")
    return None


def check_head(head: bytes) -> HeadRefusal | None:
    """A whole head (up to and with its blank line): None if aiohttp may read it."""
    lines = head.split(b"\n")
    return _request_line(lines[0]) or _header_lines(lines[1:])


def check_partial_head(partial: bytes, checked: int = 0) -> HeadRefusal | None:
    """The start of a head still arriving: refused as soon as a line of it is known bad, so
    that neither a long line nor a wrong version has to be waited out. `checked`: how much of
    `partial` an earlier call saw; the lines it cleared are not read again (a head dripped a
    byte a read would otherwise cost a pass over all of it per byte)."""
    if len(partial) > MAX_REQUEST_HEAD:
        return HeadRefusal(431, "Request Header Fields Too Large", "the request head is too long")
    first_end = partial.find(b"\n")
    if first_end < 0:  # the request line, still arriving
        if len(partial) > MAX_LINE:
            return HeadRefusal(414, "URI Too Long", "the request line is too long")
        return None
    if checked <= first_end:  # the request line ended since the last call
        refusal = _request_line(partial[:first_end])
        if refusal is not None:
            return refusal
    from_line = max(first_end + 1, partial.rfind(b"\n", 0, checked) + 1)
    return _header_lines(partial[from_line:].split(b"\n"))
