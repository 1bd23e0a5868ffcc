"""What nodes send each other, and who is where, with bytes and events only."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.cluster.presence import RemotePresence
from tcposcrouter.cluster.wire import (
    LoginFailure,
    decode_failure,
    decode_presence,
    decode_traffic,
    encode_broadcast,
    encode_failure,
    encode_private,
)


def test_packets_cross_byte_for_byte() -> None:
    packets = [msg("/a", 1), bundle(IMMEDIATELY, msg("/b", b"\x00\xc0\x1f")), b"\x1f" * 8]
    traffic = decode_traffic(encode_broadcast("n1", "ana ünïcode", packets))
    assert (traffic.node, traffic.sender, traffic.target) == ("n1", "ana ünïcode", "")
    assert traffic.packets == packets
    private = decode_traffic(encode_private("n2", "bob", msg("/p", 1)))
    assert (private.node, private.target, private.packets) == ("n2", "bob", [msg("/p", 1)])


@pytest.mark.parametrize(
    "data", [b"", b"X\x00\x00\x00\x00", b"B\x00\x00\x00\x02n1", b"B\x00\x00\x00\x05n1\x1fa\x00\x00"]
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


def test_a_user_is_elsewhere_while_any_other_node_has_it() -> None:
    presence = RemotePresence("me")
    assert not presence.joined("me", "band", "ana")  # this node's own events change nothing
    assert presence.joined("n1", "band", "ana")
    assert not presence.joined("n2", "band", "ana")
    assert not presence.left("n1", "band", "ana")
    assert presence.left("n2", "band", "ana")
    assert not presence.left("n2", "band", "ana")


def test_a_snapshot_adds_at_once_and_removes_at_the_second() -> None:
    presence = RemotePresence("me")
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("me", "band", "carl")])
    assert came == [("band", "bob")] and went == []  # ana may be on a node not back yet
    came, went = presence.replace([("n2", "band", "bob")])
    assert came == [] and went == [("band", "ana")]
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("n1", "band", "ana")])
    assert came == [] and went == []
