"""What nodes send each other (cluster/wire.py), with bytes only."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.cluster.wire import (
    EnsembleRecord,
    LoginFailure,
    decode_ensemble,
    decode_failure,
    decode_lines,
    decode_presence,
    decode_stored_state,
    decode_traffic,
    encode_broadcast,
    encode_failure,
    encode_lines,
    encode_private,
)
from tcposcrouter.core.tempo import Line


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


def test_a_timeline_is_kept_on_the_wall_clock_and_read_back() -> None:
    lines = [Line(1_800_000_000.25, 0.0, 120.0, 4, 1), Line(1_800_000_002.0, 4.0, 90.5, 3, 0)]
    data = encode_lines(lines)
    assert len(data) == 64 and decode_lines(data) == lines
    for broken in (b"", data[:-1], data + data[:32]):
        with pytest.raises(ValueError):
            decode_lines(broken)


def test_an_ensemble_record_carries_any_bytes_after_its_fields() -> None:
    payload = b"/doc\x00\x00\x00\x00,s\x00\x00a\x1fb\x00\x00"  # a separator inside the message
    data = b"\x1f".join([b"S", b"12", b"band", b"n1", b"ana", payload])
    assert decode_ensemble(data) == EnsembleRecord("S", 12, "band", "n1", "ana", payload)
    tempo = decode_ensemble(b"T\x1f3\x1fband\x1fn2\x1f\x1f" + b"L" * 32)
    assert (tempo.kind, tempo.number, tempo.sender, len(tempo.payload)) == ("T", 3, "", 32)
    for broken in (b"X\x1f1\x1fg\x1fn\x1fu\x1fp", b"S\x1f1\x1fg", b"S\x1fone\x1fg\x1fn\x1fu\x1fp"):
        with pytest.raises(ValueError):
            decode_ensemble(broken)


def test_the_stored_state_comes_back_in_the_order_it_was_set() -> None:
    pairs = [b"/b", b"9:B", b"/a", b"3:A:with:colons"]
    assert decode_stored_state(pairs) == [(3, "/a", b"A:with:colons"), (9, "/b", b"B")]
    for broken in ([b"/a"], [b"/a", b"no number"]):
        with pytest.raises(ValueError):
            decode_stored_state(broken)
