"""What nodes send each other, and who is where, with bytes and events only."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.cluster.presence import RemotePresence
from tcposcrouter.cluster.resp import ReplyCounter, encode_command
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


def test_a_user_is_elsewhere_while_any_other_node_has_it() -> None:
    presence = RemotePresence("me")
    assert not presence.joined("me", "band", "ana")  # this node's own events change nothing
    assert presence.joined("n1", "band", "ana")
    assert not presence.joined("n2", "band", "ana")
    presence.joined("n2", "band", "bob")
    assert sorted(presence.nodes_in("band")) == ["n1", "n2"]
    assert not presence.left("n1", "band", "ana")
    assert presence.nodes_in("band") == ["n2"]
    assert presence.left("n2", "band", "ana")
    assert presence.nodes_in("band") == ["n2"]  # bob is still there
    assert not presence.left("n2", "band", "ana")


def test_a_snapshot_adds_at_once_and_removes_at_the_second() -> None:
    presence = RemotePresence("me")
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("me", "band", "carl")])
    assert came == [("band", "bob")] and went == []  # ana may be on a node not back yet
    came, went = presence.replace([("n2", "band", "bob")])
    assert came == [] and went == [("band", "ana")]
    assert presence.nodes_in("band") == ["n2"]
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("n1", "band", "ana")])
    assert came == [] and went == []


def test_resp_commands_and_replies() -> None:
    assert encode_command(b"PUBLISH", b"ch", b"a\r\nb") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n"
    )
    counter = ReplyCounter()
    for piece in (b":1\r\n:", b"0\r\n-ERR no", b"\r\n+OK\r\n"):
        counter.feed(piece)
    assert counter.replies == 4 and counter.errors == ["ERR no"]
    with pytest.raises(ValueError):
        counter.feed(b"$5\r\nhello\r\n")
