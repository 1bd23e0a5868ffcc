"""WebSocket by hand: a handshake and frames no library would send, for the tests of the HTTP
port's door (RFC 6455 §5.2)."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

from support.process import RouterProcess

__all__ = ["client_frame", "close_frame", "raw_websocket", "upgrade_request"]


def client_frame(
    payload: bytes,
    opcode: int = 2,
    *,
    final: bool = True,
    masked: bool = True,
    reserved: int = 0,
    declared: int | None = None,
) -> bytes:
    """One client frame: FIN and binary unless told, masked unless told. `declared`: a length
    to put in the header instead of the payload's."""
    n = len(payload) if declared is None else declared
    first = (0x80 if final else 0) | (reserved << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((first, mask_bit | n))
    elif n < 65536:
        header = struct.pack(">BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack(">BBQ", first, mask_bit | 127, n)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade_request(path: str = "/osc") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def raw_websocket(
    router: RouterProcess, receive_buffer: int = 0, *, path: str = "/osc", source: str = ""
) -> socket.socket:
    """A WebSocket handshake by hand, so that the test can send frames no library would, and
    stop reading for real (websockets' client reads in a thread of its own). `source`: one
    of 127.0.0.0/8, to look like a host of its own."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    if source:
        sock.bind((source, 0))
    sock.connect(("127.0.0.1", router.http_port or 0))
    sock.sendall(upgrade_request(path))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def close_frame(sock: socket.socket, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the router's close frame; return its code and reason (frames before it are
    skipped)."""
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while time.monotonic() < deadline:
        while len(data) >= 2:
            length = data[1] & 0x7F
            start = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if length >= 126:
                if len(data) < start:
                    break
                length = struct.unpack(">H" if start == 4 else ">Q", data[2:start])[0]
            if len(data) < start + length:
                break
            if data[0] & 0x0F == 8:
                body = data[start : start + length]
                return struct.unpack(">H", body[:2])[0], body[2:].decode()
            data = data[start + length :]
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"no close frame: {data[:40]!r}")
