"""The client's sans-I/O protocol, driven with the bytes a router sends."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.client.protocol import (
    ClientProtocol,
    ClientState,
    Packet,
    Refused,
    Registered,
    Resumed,
    ResumeFailed,
    RouterErrorReply,
    SessionGranted,
    StateBegin,
    StateCleared,
    StateEnd,
    StateValue,
    TempoLine,
    TimeReply,
    UserList,
    build_bundle,
    build_message,
)
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder, SlipDecoder, frame
from tcposcrouter.osc.messages import TIME, time_tag
from tcposcrouter.osc.tempo import tempo_message


def registered(framing: Framing = Framing.LENGTH_PREFIX) -> tuple[ClientProtocol, bytes]:
    protocol = ClientProtocol(framing)
    sent = protocol.register("ana", "pw", "band", "gpw", random_id=7)
    return protocol, sent


def test_register_is_framed_and_its_replies_are_events() -> None:
    protocol, sent = registered()
    (packet,) = LengthPrefixDecoder(1 << 20).feed(sent)
    assert packet == msg("/oscrouter/register", "ana", "pw", "band", "gpw", 7)
    assert protocol.state.value == "registering"  # (no narrowing: it changes below)
    replies = b"".join(
        frame(p, Framing.LENGTH_PREFIX)
        for p in (
            msg("/oscrouter/register/ana/7"),
            msg("/oscrouter/register", "ana", 7),
            msg("/oscrouter/userlist", "bob", "ana"),
        )
    )
    # Byte by byte: events come out whole whatever the reads are.
    events = [e for i in range(len(replies)) for e in protocol.receive_data(replies[i : i + 1])]
    assert events == [Registered("ana", 7), UserList(["bob", "ana"])]
    assert protocol.state is ClientState.REGISTERED
    assert protocol.users == ["bob", "ana"]


def test_a_refusal_carries_the_code() -> None:
    protocol, _ = registered(Framing.SLIP)
    events = protocol.receive_data(
        frame(msg("/oscrouter/error", "auth_failed", "wrong group password"), Framing.SLIP)
    )
    assert events == [Refused("auth_failed", "wrong group password")]
    assert protocol.state is ClientState.REFUSED


def test_after_the_register_packets_errors_and_time() -> None:
    protocol, _ = registered(Framing.WEBSOCKET)
    protocol.receive_data(msg("/oscrouter/register/ana/7"))
    note = msg("/note", 60, 0.5)
    chord = bundle(IMMEDIATELY, msg("/a", 1), msg("/b", 2))
    private = msg("/oscrouter/private", "bob", "/hi", 1)
    reply = TIME + b",ttt\x00\x00\x00\x00" + time_tag(100.5) + time_tag(200.25) + time_tag(200.25)
    events = []
    for message in (note, chord, private, msg("/oscrouter/error", "unknown_user", "no x"), reply):
        events += protocol.receive_data(message)
    assert events[:3] == [Packet(note), Packet(chord), Packet(private)]
    assert events[0].address == "/note" and events[0].args == [60, 0.5]  # type: ignore[union-attr]
    assert events[1].is_bundle and [m.address for m in events[1].bundle()] == ["/a", "/b"]  # type: ignore[union-attr]
    assert events[2].private_from == "bob"  # type: ignore[union-attr]
    assert events[3] == RouterErrorReply("unknown_user", "no x")
    assert events[4] == TimeReply(100.5, 200.25, 200.25)


def test_the_groups_tempo_is_an_event_of_its_own_not_a_packet() -> None:
    protocol, _ = registered(Framing.LENGTH_PREFIX)
    protocol.receive_data(frame(msg("/oscrouter/register/ana/7"), Framing.LENGTH_PREFIX))
    told = tempo_message(1_800_000_000.5, 8.0, 90.0, 3, 1)
    (event,) = protocol.receive_data(frame(told, Framing.LENGTH_PREFIX))
    assert isinstance(event, TempoLine)
    assert (event.beat0, event.bpm, event.quantum, event.playing) == (8.0, 90.0, 3, 1)
    assert event.t0 == pytest.approx(1_800_000_000.5, abs=1e-6)
    assert event.beat_at(event.t0 + 2.0) == pytest.approx(11.0)  # 1.5 beats a second


def lp(*messages: bytes) -> bytes:
    return b"".join(frame(m, Framing.LENGTH_PREFIX) for m in messages)


def test_the_state_told_on_joining_is_handed_on_and_asked_again_only_kept() -> None:
    protocol, _ = registered(Framing.LENGTH_PREFIX)
    protocol.receive_data(frame(msg("/oscrouter/register/ana/7"), Framing.LENGTH_PREFIX))
    told = [msg("/oscrouter/state/begin", 1), msg("/fader", 0.5), msg("/oscrouter/state/end")]
    events = protocol.receive_data(lp(*told))
    assert events == [
        StateBegin(),
        StateValue("/fader", Packet(msg("/fader", 0.5)), True),
        StateEnd(),
    ]
    assert [LengthPrefixDecoder(1 << 16).feed(p) for p in protocol.follow_state()] == [
        [msg("/oscrouter/state/follow", 1)],
        [msg("/oscrouter/state")],
    ]
    wrapped = [
        msg("/oscrouter/state/begin", 1),
        msg("/oscrouter/state", "/fader", 0.5),
        msg("/oscrouter/state/end"),
        msg("/oscrouter/state", "/fader", 0.25),  # a change by another member, live
        msg("/oscrouter/state/clear", "/fader"),
    ]
    assert protocol.receive_data(lp(*wrapped)) == [
        StateBegin(),
        StateValue("/fader", Packet(msg("/fader", 0.5)), False),  # asked again: kept only
        StateEnd(),
        StateValue("/fader", Packet(msg("/fader", 0.25)), True),
        StateCleared("/fader"),
    ]


def test_with_a_session_every_packet_after_the_reply_is_counted_and_a_resume_goes_on() -> None:
    protocol, _ = registered(Framing.LENGTH_PREFIX)
    protocol.receive_data(lp(msg("/oscrouter/register/ana/7"), msg("/oscrouter/userlist", "ana")))
    assert not protocol.numbering
    (granted,) = protocol.receive_data(lp(msg("/oscrouter/session", "tok", 30)))
    assert granted == SessionGranted("tok", 30) and protocol.numbering
    protocol.receive_data(lp(msg("/a"), msg("/oscrouter/userlist", "ana", "bob"), msg("/b")))
    assert protocol.received == 3  # user lists are numbered too
    assert LengthPrefixDecoder(1 << 16).feed(protocol.ack()) == [msg("/oscrouter/session/ack", 3)]
    again = ClientProtocol(Framing.SLIP)  # the new connection
    first = again.resume("band", "tok", protocol.received)
    assert SlipDecoder(1 << 16).feed(first) == [msg("/oscrouter/session/resume", "band", "tok", 3)]
    events = again.receive_data(frame(msg("/oscrouter/session/resumed", 3), Framing.SLIP))
    assert events == [Resumed(3)] and again.state is ClientState.REGISTERED
    again.receive_data(frame(msg("/c"), Framing.SLIP))
    assert again.received == 4


def test_a_resume_the_router_cannot_do_is_an_event_to_register_on() -> None:
    protocol = ClientProtocol(Framing.LENGTH_PREFIX)
    protocol.resume("band", "tok", 9)
    reply = msg("/oscrouter/error", "resume_expired", "no place to resume")
    assert protocol.receive_data(lp(reply)) == [ResumeFailed("no place to resume")]
    assert not protocol.numbering
    protocol.register("ana", "pw", "band", "gpw", random_id=7)
    assert protocol.receive_data(lp(msg("/oscrouter/register/ana/7"))) == [Registered("ana", 7)]
    old_router = ClientProtocol(Framing.LENGTH_PREFIX)  # one that knows no resume: it refuses
    old_router.resume("band", "tok", 9)
    refusal = msg("/oscrouter/error", "not_registered", "the first packet must be a register")
    assert old_router.receive_data(lp(refusal)) == [
        Refused("not_registered", "the first packet must be a register")
    ]


def test_what_the_client_sends() -> None:
    assert build_message("/n", 1, 0.5, "x", b"\x01", True, None, ("d", 0.25), ("h", 2**40)) == (
        b"/n\x00\x00,ifsbTNdh\x00\x00\x00"
        + (1).to_bytes(4, "big")
        + bytes.fromhex("3f000000")
        + b"x\x00\x00\x00"
        + b"\x00\x00\x00\x01\x01\x00\x00\x00"
        + bytes.fromhex("3fd0000000000000")
        + (2**40).to_bytes(8, "big")
    )
    assert build_bundle([msg("/a")]) == bundle(IMMEDIATELY, msg("/a"))
    assert build_bundle([msg("/a")], at=100.5)[8:16] == time_tag(100.5)
    protocol = ClientProtocol(Framing.WEBSOCKET)
    assert protocol.frame(msg("/a")) == msg("/a")  # a WebSocket message is the packet


@pytest.mark.parametrize("framing", [Framing.LENGTH_PREFIX, Framing.SLIP])
def test_time_requests_are_framed(framing: Framing) -> None:
    protocol = ClientProtocol(framing)
    assert protocol.time_request(100.5) == frame(TIME + b",t\x00\x00" + time_tag(100.5), framing)


def test_a_message_made_private_keeps_its_types_and_bytes() -> None:
    from tcposcrouter.client.protocol import as_private

    note = msg("/note", 60, 0.5, "piano")
    assert as_private("bob", note) == msg("/oscrouter/private", "bob", "/note", 60, 0.5, "piano")
    assert as_private("bob", msg("/bang")) == msg("/oscrouter/private", "bob", "/bang")
