"""A relayed connection's first bytes (server/relay.py): who the client is, then what it sent,
read back by the worker that owns its group."""

from __future__ import annotations

import struct

from tcposcrouter.server.relay import Relayed, read_relayed


def announce(fields: str, held: bytes) -> bytes:
    text = fields.encode()
    return struct.pack("!H", len(text)) + text + held


def test_the_owner_reads_who_the_client_is_and_what_it_sent_so_far() -> None:
    data = announce(
        "[2001:db8::1]:4000\n2001:db8::1\nTLS", b"\x00\x00\x00\x08/x\x00\x00,\x00\x00\x00"
    )
    relayed, held = read_relayed(data) or (None, b"")
    assert relayed == Relayed("[2001:db8::1]:4000", "2001:db8::1", "TLS")
    assert held == b"\x00\x00\x00\x08/x\x00\x00,\x00\x00\x00"


def test_anything_else_is_not_a_relay() -> None:
    assert read_relayed(b"\x00") is None
    assert read_relayed(announce("only\ntwo", b"")) is None
