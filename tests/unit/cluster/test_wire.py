"""What nodes send each other (cluster/wire.py), with bytes only."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.cluster.wire import (
    LoginFailure,
    decode_failure,
    decode_presence,
    decode_traffic,
    encode_broadcast,
    encode_failure,
    encode_private,
)


def test_packets_cross_byte_for_byte_many_records_to_a_message() -> None:
    packets = [msg("/a", 1), bundle(IMMEDIATELY, msg("/b", b"\x00\xc0\x1f")), b"\x1f" * 8]
    message = b"".join(
        (
            encode_broadcast("band", "ana ünïcode", packets),
            encode_private("band", "bob", msg("/p", 1)),
            encode_broadcast("other", "carl", [msg("/c", 2)]),
        )
    )
    first, private, last = decode_traffic(message)
    assert (first.group, first.name, first.private, first.packets) == (
        "band",
        "ana ünïcode",
        False,
        packets,
    )
    assert (private.group, private.name, private.private) == ("band", "bob", True)
    assert private.packets == [msg("/p", 1)]
    assert (last.group, last.name, last.packets) == ("other", "carl", [msg("/c", 2)])


@pytest.mark.parametrize(
    "data",
    [
        b"X\x00\x00\x00\x00",
        b"B\x00\x00\x00\x02ba",
        b"B\x00\x00\x00\x06band\x1fa\x00\x00\x00\x01\x00\x00\x00\x09abc",
        b"P\x00\x00\x00\x06band\x1fa\x00\x00\x00\x00",
    ],
)
def test_what_no_node_sent_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_traffic(data)


def test_events_and_failures_read_back() -> None:
    event = decode_presence(b"J\x1fn1\x1fband\x1fana")
    assert (event.kind, event.node, event.group, event.user) == ("J", "n1", "band", "ana")
    with pytest.raises(ValueError):
        decode_presence(b"X\x1fn1\x1fband\x1fana")
    failure = LoginFailure("n1", "192.0.2.1", "band", "ana")
    assert decode_failure(encode_failure(failure)) == failure
