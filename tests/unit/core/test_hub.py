"""The hub with bytes only: every register case and routing rule of docs/protocol.md §3."""

from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage

from support.net import LP, SLIP, Net, error_of
from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message, register
from tcposcrouter.core.session import SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing, frame

# -- register ---------------------------------------------------------------------------------


def test_register_replies_in_the_contract_order() -> None:
    net = Net()
    ana = net.connect()
    net.send(ana, register("ana", random_id=4242))
    got = net.got_messages(ana)
    assert got[:3] == [
        ("/oscrouter/register/ana/4242", []),
        ("/oscrouter/register", ["ana", 4242]),
        ("/oscrouter/userlist", ["ana"]),
    ]
    # Then the group's tempo (docs/protocol.md §11): a new group's, from now, at beat 0; then
    # its state (§13), empty.
    (address, (_, beat, bpm, quantum, playing)), *rest = got[3:]
    assert (address, beat, bpm, quantum, playing) == ("/oscrouter/tempo", 0.0, 120.0, 4, 1)
    assert rest == [("/oscrouter/state/begin", [0]), ("/oscrouter/state/end", [])]
    assert ana.state is SessionState.REGISTERED


def test_register_without_random_id_answers_zero() -> None:
    net = Net()
    ana = net.connect()
    net.send(ana, register("ana", random_id=None))
    assert net.got_messages(ana)[:2] == [
        ("/oscrouter/register/ana/0", []),
        ("/oscrouter/register", ["ana", 0]),
    ]


@pytest.mark.parametrize(
    ("tag", "payload", "written"),
    [
        ("h", struct.pack(">q", 2**40), str(2**40)),
        ("f", struct.pack(">f", 1234.0), "1234.0"),  # Pure Data sends every number as a float
        ("d", struct.pack(">d", 0.5), "0.5"),
    ],
)
def test_register_random_id_types(tag: str, payload: bytes, written: str) -> None:
    net = Net()
    ana = net.connect()
    strings = b"".join(osc_string(s) for s in ("ana", "pw", "band", "gpw"))
    net.send(ana, raw_message("/oscrouter/register", ",ssss" + tag, strings + payload))
    assert net.got_messages(ana)[0] == (f"/oscrouter/register/ana/{written}", [])


def test_register_with_symbols_and_extra_arguments() -> None:
    net = Net()
    ana = net.connect()
    strings = b"".join(osc_string(s) for s in ("ana", "pw", "band", "gpw", "extra"))
    net.send(
        ana,
        raw_message("/oscrouter/register", ",SSSSis", strings[:-8] + b"\0\0\0\7" + strings[-8:]),
    )
    assert net.got_messages(ana)[0] == ("/oscrouter/register/ana/7", [])


def test_second_connection_of_a_user_and_the_user_list() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "bob"])]
    ana2 = net.connect()
    net.send(ana2, register("ana"))
    assert net.got_messages(ana2)[-4] == ("/oscrouter/userlist", ["ana", "bob"])  # then tempo
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "bob"])]
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["ana", "bob"])]


def test_returning_user_is_accepted_while_the_old_connection_is_still_open() -> None:
    # sclang does not notice a dead connection and comes back with the same name
    # (docs/protocol.md §6)
    net = Net()
    old = net.join("ana")
    bob = net.join("bob")
    new = net.connect()
    net.send(new, register("ana", random_id=99))
    assert net.got_messages(new)[0] == ("/oscrouter/register/ana/99", [])
    net.leave(old)  # the router notices the dead one later
    net.got(bob)
    net.got(new)
    net.send(bob, msg("/still", 1))
    assert net.got(new) == [msg("/still", 1)]


@pytest.mark.parametrize(
    ("kw", "detail"),
    [({"group_password": "guess-1234"}, "group band"), ({"password": "guess-1234"}, "user ana")],
)
def test_wrong_password_is_refused_and_changes_nothing(
    kw: dict[str, str], detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The wrong guess is "guess-1234"; neither it nor the real passwords may appear anywhere.
    caplog.set_level(logging.DEBUG)
    net = Net()
    ana = net.join("ana", password="secret-user", group_password="secret-group")
    intruder = net.connect()
    net.send(
        intruder,
        register(
            "ana",
            password=kw.get("password", "secret-user"),
            group_password=kw.get("group_password", "secret-group"),
        ),
    )
    messages = net.got_messages(intruder)
    assert messages == [("/oscrouter/error", ["auth_failed", messages[0][1][1]])]
    assert detail in str(messages[0][1][1])
    assert intruder.state is SessionState.CLOSING
    assert net.got(ana) == []  # no new user list: nothing changed
    assert [m.owner for m in net.hub.directory.groups["band"].mailboxes()] == [ana.id]
    for text in (caplog.text, str(messages)):
        assert "secret" not in text
        assert "guess-1234" not in text


@pytest.mark.parametrize(
    "packet",
    [
        msg("/oscrouter/register", "ana", "pw", "band"),
        msg("/oscrouter/register"),
        msg("/oscrouter/register", 1, "pw", "band", "gpw"),
        msg("/oscrouter/register", "", "pw", "band", "gpw"),
        msg("/oscrouter/register", "ana", "pw", "x" * 65, "gpw"),
        msg("/oscrouter/register", "an\na", "pw", "band", "gpw"),
        msg("/oscrouter/register", "ana", "pw", "band", "gpw", "not-a-number"),
    ],
)
def test_malformed_register_is_refused_and_closed(packet: bytes) -> None:
    net = Net()
    ana = net.connect()
    net.send(ana, packet)
    assert error_of(net, ana) == "bad_register"
    assert ana.state is SessionState.CLOSING
    assert net.hub.directory.groups == {}


def test_names_of_64_characters_are_fine() -> None:
    net = Net()
    net.join("a" * 64, group="g" * 64)


@pytest.mark.parametrize(
    "first", [msg("/note", 1), msg("/oscrouter/ping", "me"), bundle(IMMEDIATELY)]
)
def test_first_packet_must_be_a_register(first: bytes) -> None:
    net = Net()
    ana = net.connect()
    net.send(ana, first, register("ana"))
    assert error_of(net, ana) == "not_registered"
    assert net.got(ana) == []  # the register after it was not acted on
    assert ana.state is SessionState.CLOSING


def test_invalid_first_packet_closes() -> None:
    net = Net()
    ana = net.connect()
    net.send(ana, b"/x\x00\x00,q\x00\x00")
    assert error_of(net, ana) == "packet_invalid"
    assert ana.state is SessionState.CLOSING


def test_second_register_is_refused_and_changes_nothing() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.send(ana, register("carl"))
    assert error_of(net, ana) == "already_registered"
    assert ana.state is SessionState.REGISTERED
    assert list(net.hub.directory.groups["band"].users) == ["ana", "bob"]
    assert net.got(bob) == []


def test_register_inside_a_bundle_then_the_rest_is_forwarded() -> None:
    # liblo's oscsendfile wraps even the register in a bundle
    net = Net()
    bob = net.join("bob")
    net.got(bob)
    ana = net.connect()
    timetag = b"\x00\x00\x00\x05\x00\x00\x00\x00"
    net.send(ana, bundle(timetag, register("ana", random_id=3), msg("/hello", 1)))
    assert [a for a, _ in net.got_messages(ana)] == [
        "/oscrouter/register/ana/3",
        "/oscrouter/register",
        "/oscrouter/userlist",
        "/oscrouter/tempo",
        "/oscrouter/state/begin",
        "/oscrouter/state/end",
    ]
    assert net.got(bob) == [
        msg("/oscrouter/userlist", "bob", "ana"),
        bundle(timetag, msg("/hello", 1)),
    ]


# -- broadcast ---------------------------------------------------------------------------------


def test_broadcast_reaches_every_other_user_and_never_the_sender() -> None:
    net = Net()
    ana = net.join("ana")
    ana2 = net.join("ana")
    bob = net.join("bob")
    bob2 = net.join("bob")
    carl = net.join("carl", framing=SLIP)
    other = net.join("dan", group="other")
    for s in (ana, ana2, bob, bob2, carl, other):
        net.got(s)
    note = raw_message(
        "/n", ",idS", struct.pack(">i", 1) + struct.pack(">d", 0.1) + osc_string("sym")
    )
    net.send(ana, note)
    assert net.got(ana) == [] and net.got(ana2) == []
    assert net.got(bob) == [note] and net.got(bob2) == [note] and net.got(carl) == [note]
    assert net.got(other) == []


def test_order_is_kept_per_sender() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob", framing=SLIP)
    net.got(ana)
    packets = [msg("/seq", i) for i in range(500)]
    net.send(ana, *packets)
    assert net.got(bob) == packets


def test_one_packet_is_framed_once_per_framing() -> None:
    net = Net()
    ana = net.join("ana")
    receivers = [net.join(f"u{i}") for i in range(3)] + [
        net.join(f"s{i}", framing=SLIP) for i in range(3)
    ]
    for s in receivers:
        net.got(s)
    net.hub.receive(ana, frame(msg("/x", 1), LP), net.now)
    net.hub.flush()
    chunks = [net.sinks[s.id].writes[-1] for s in receivers]
    assert chunks[0] == frame(msg("/x", 1), LP) and chunks[3] == frame(msg("/x", 1), SLIP)
    assert len({id(c) for c in chunks[:3]}) == 1 and len({id(c) for c in chunks[3:]}) == 1


def test_bundle_with_future_time_tag_is_forwarded_at_once_and_intact() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(bob)
    future = struct.pack(">II", 0xFFFFFFF0, 0)
    packet = bundle(future, msg("/a", 1.5), bundle(IMMEDIATELY, msg("/b", "x")))
    net.send(ana, packet)
    assert net.got(bob) == [packet]


def test_control_messages_in_a_bundle_are_acted_on_and_the_rest_forwarded() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    timetag = b"\x00\x00\x00\x07\x00\x00\x00\x00"
    net.send(
        ana,
        bundle(
            timetag,
            msg("/oscrouter/ping", "ana"),
            msg("/a", 1),
            msg("/oscrouter/private", "bob", "/p", 2),
            msg("/b", 2),
        ),
    )
    assert net.got(bob) == [
        msg("/oscrouter/private", "ana", "/p", 2),
        bundle(timetag, msg("/a", 1), msg("/b", 2)),
    ]
    assert net.got(ana) == []


def test_ping_is_neither_forwarded_nor_answered() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, msg("/oscrouter/ping", "ana"), msg("/oscrouter/ping"))
    assert net.got(ana) == [] and net.got(bob) == []


@pytest.mark.parametrize(
    "forged",
    ["/oscrouter/userlist", "/oscrouter/register/ana/1", "/oscrouter/error", "/oscrouter/whatever"],
)
def test_router_namespace_cannot_be_forged(forged: str) -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, msg(forged, "mallory"), msg("/after", 1))
    assert error_of(net, ana) == "unknown_command"
    assert ana.state is SessionState.REGISTERED
    assert net.got(bob) == [msg("/after", 1)]


def test_invalid_packet_from_a_member_is_dropped_and_the_rest_goes_on() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, msg("/a", 1), b"/x\x00\x00,i\x00\x00", msg("/b", 2))
    assert error_of(net, ana) == "packet_invalid"
    assert net.got(bob) == [msg("/a", 1), msg("/b", 2)]


def test_bad_slip_escape_loses_one_frame_only() -> None:
    net = Net()
    ana = net.join("ana", framing=SLIP)
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send_bytes(ana, b"\xc0\xdb\x00\xc0" + frame(msg("/b", 2), SLIP))
    assert error_of(net, ana) == "packet_invalid"
    assert net.got(bob) == [msg("/b", 2)]


def test_framing_error_closes_the_connection() -> None:
    net = Net()
    ana = net.join("ana")
    net.send_bytes(ana, b"\x00\x00\x00\x00")
    assert error_of(net, ana) == "framing_error"
    assert ana.state is SessionState.CLOSING
    net.send(ana, msg("/ignored"))
    assert net.got(ana) == []


def test_packet_too_large_closes_the_connection() -> None:
    net = Net(Limits(max_packet_size=64))
    ana = net.join("ana")
    net.send(ana, msg("/big", "x" * 100))
    assert error_of(net, ana) == "packet_too_large"
    assert ana.state is SessionState.CLOSING


# -- private -----------------------------------------------------------------------------------


def test_private_message_reaches_every_connection_of_the_target_only() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    bob2 = net.join("bob", framing=SLIP)
    carl = net.join("carl")
    for s in (ana, bob, bob2, carl):
        net.got(s)
    tail = osc_string("/code") + struct.pack(">d", 0.25) + osc_string("sym")
    sent = raw_message("/oscrouter/private", ",sSdS", osc_string("bob") + tail)
    net.send(ana, sent)
    expected = raw_message("/oscrouter/private", ",sSdS", osc_string("ana") + tail)
    assert net.got(bob) == [expected] and net.got(bob2) == [expected]
    assert net.got(carl) == [] and net.got(ana) == []


def test_private_to_unknown_user() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/private", "nobody", "/x"))
    assert error_of(net, ana) == "unknown_user"
    assert ana.state is SessionState.REGISTERED


@pytest.mark.parametrize(
    "packet", [msg("/oscrouter/private", "bob"), msg("/oscrouter/private", 1, "/x")]
)
def test_private_without_target_and_address(packet: bytes) -> None:
    net = Net()
    ana = net.join("ana")
    net.join("bob")
    net.got(ana)
    net.send(ana, packet)
    assert error_of(net, ana) == "bad_private"


# -- leaving -----------------------------------------------------------------------------------


def test_leaving_updates_the_user_list_and_removes_empty_users_and_groups() -> None:
    net = Net()
    ana = net.join("ana", group_password="first")
    ana2 = net.join("ana", group_password="first")
    bob = net.join("bob", group_password="first")
    net.got(bob)
    net.leave(ana)
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["ana", "bob"])]
    net.leave(ana2)
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["bob"])]
    net.leave(bob)
    assert net.hub.directory.groups == {}
    # After that anyone may create the group again, with a new password.
    net.join("eve", group_password="second")
    assert net.hub.statistics().connections_closed == 3


def test_leaving_twice_and_leaving_unregistered_are_harmless() -> None:
    net = Net()
    ana = net.join("ana")
    stranger = net.connect()
    net.leave(stranger)
    net.leave(ana)
    net.leave(ana)
    assert net.hub.directory.groups == {} and net.hub.statistics().connections == 0


# -- arbitrary bytes ---------------------------------------------------------------------------


# Each example registers three users, and each register costs scrypt hashes: a tenth of the
# profile's examples keeps this test to seconds (the fuzz profile still makes it 50,000).
@settings(max_examples=max(100, settings().max_examples // 10))
@given(st.lists(st.binary(max_size=300), max_size=6), st.sampled_from([LP, SLIP]))
def test_arbitrary_bytes_never_break_the_hub(chunks: list[bytes], framing: Framing) -> None:
    net = Net()
    ana = net.join("ana", framing=framing)
    bob = net.join("bob")
    stranger = net.connect(framing=None)
    for chunk in chunks:
        net.send_bytes(ana, chunk)  # from a member
        net.send_bytes(stranger, chunk)  # and from a connection that never registered
    for packet in net.got(ana) + net.got(stranger):
        address = OscMessage(packet).address
        assert address in ("/oscrouter/error", "/oscrouter/userlist")
    # Whatever happened to ana, bob is untouched and the group still works.
    assert bob.state is SessionState.REGISTERED
    carl = net.join("carl")
    net.got(bob)
    net.send(carl, msg("/still/fine"))
    assert msg("/still/fine") in net.got(bob)


# -- WebSocket connections: one message, one packet ---------------------------------------------


def test_websocket_members_talk_with_tcp_members_byte_exact() -> None:
    net = Net()
    web = net.join("web", websocket=True)
    ana = net.join("ana")
    bob = net.join("bob", framing=SLIP)
    for s in (web, ana, bob):
        net.got(s)
    packet = bundle(IMMEDIATELY, msg("/one", 1), msg("/two", 0.5))
    net.send(web, packet, msg("/three", "x"))  # two messages
    assert net.got(ana) == [packet, msg("/three", "x")] == net.got(bob)
    net.send(ana, msg("/to/web", 7))
    # Each packet is a write of its own for a WebSocket: the message is the frame.
    assert net.sinks[web.id].writes[-1] == msg("/to/web", 7)
    assert net.got(web) == [msg("/to/web", 7)]


def test_websocket_register_replies_and_errors_are_messages() -> None:
    net = Net()
    web = net.connect(websocket=True)
    net.send(web, register("web"))
    writes = net.sinks[web.id].writes
    assert [OscMessage(w).address for w in writes] == [
        "/oscrouter/register/web/1",
        "/oscrouter/register",
        "/oscrouter/userlist",
        "/oscrouter/tempo",
        "/oscrouter/state/begin",
        "/oscrouter/state/end",
    ]
    net.got(web)
    net.send(web, b"/bad")
    assert error_of(net, web) == "packet_invalid"
    assert web.state is SessionState.REGISTERED


def test_each_user_counts_what_it_sent_while_registered() -> None:
    net = Net()
    ana = net.join("ana")
    net.join("bob")
    net.send(ana, msg("/a"), msg("/b"))
    assert ana.user is not None
    assert ana.user.packets_sent == 2
    assert ana.user.bytes_sent == 2 * (len(msg("/a")) + 4)


def test_user_lists_go_out_once_a_turn_with_the_group_as_it_is_then() -> None:
    net = Net()
    ana = net.join("ana")
    net.got(ana)
    # Three newcomers and a leave in one turn (one flush): each newcomer gets its reply and its
    # own list at once, and ana one list, the last.
    newcomers = [net.connect() for _ in range(3)]
    for name, session in zip(("bob", "carl", "dora"), newcomers, strict=True):
        net.hub.receive(session, frame(register(name), LP), net.now)
        if name == "carl":
            net.hub.gone(session, net.now)  # gone again before the turn ends
    net.collect()
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "bob", "dora"])]
    bob_got = net.got_messages(newcomers[0])
    assert [a for a, _ in bob_got][:6] == [
        "/oscrouter/register/bob/1",
        "/oscrouter/register",
        "/oscrouter/userlist",
        "/oscrouter/tempo",
        "/oscrouter/state/begin",
        "/oscrouter/state/end",
    ]
    assert bob_got[2] == ("/oscrouter/userlist", ["ana", "bob"])  # its own, right after
    assert bob_got[6:] == [("/oscrouter/userlist", ["ana", "bob", "dora"])]  # the turn's last
    dora_got = net.got_messages(newcomers[2])  # nothing changed after it joined: one list
    assert [a for a, _ in dora_got[2:4]] == ["/oscrouter/userlist", "/oscrouter/tempo"]
    assert len(dora_got) == 6
    assert dora_got[2] == ("/oscrouter/userlist", ["ana", "bob", "dora"])
    net.tick(1)
    assert net.got(ana) == []  # nothing changed since: nothing more


def test_the_group_hears_of_a_newcomer_before_what_it_sent_with_its_register() -> None:
    net = Net(hold_checks=True)
    ana = net.join("ana")
    net.got(ana)
    bob = net.connect()
    net.send(bob, register("bob"), msg("/hello", 1))
    net.run_checks()
    assert [a for a, _ in net.got_messages(ana)] == ["/oscrouter/userlist", "/hello"]
