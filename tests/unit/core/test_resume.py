"""A place kept through a drop (core/resume.py), driven through the pure hub: the session and its
numbering, the place held when the connection ends, a resume that takes it back with what was
missed (after a drop, or taking over a connection still open), what cannot be resumed, the
bounds, and the held place's end."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing


def start_session(net: Net, member: Session, seconds: int = 30) -> str:
    net.got(member)  # what came before (the others' joins)
    net.send(member, msg("/oscrouter/session", seconds))
    [(address, [token, granted])] = net.got_messages(member)
    assert address == "/oscrouter/session" and granted == seconds
    assert isinstance(token, str)
    return token


def resume(net: Net, token: str, received: int, group: str = "band", **kw: object) -> Session:
    fresh = net.connect(**kw)  # type: ignore[arg-type]
    net.send(fresh, msg("/oscrouter/session/resume", group, token, received))
    return fresh


def test_a_session_numbers_what_follows_and_a_resume_after_a_drop_sends_the_rest() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana)
    token = start_session(net, ana)
    assert len(token) >= 22  # at least 128 random bits in URL-safe base64
    net.send(bob, msg("/a", 1), msg("/a", 2))
    assert net.got(ana) == [msg("/a", 1), msg("/a", 2)]  # numbered 1 and 2
    net.send(ana, msg("/oscrouter/session/ack", 1))
    net.leave(ana)  # the connection ends: the place is held
    assert net.got(bob) == []  # no leave announced
    net.send(bob, msg("/a", 3))
    net.send(bob, msg("/oscrouter/private", "ana", "/p", 4))
    back = resume(net, token, 2)
    assert net.got(back) == [
        msg("/oscrouter/session/resumed", 2),
        msg("/a", 3),  # 3
        msg("/oscrouter/private", "bob", "/p", 4),  # 4: private messages are kept too
    ]
    assert back.state is SessionState.REGISTERED
    net.send(bob, msg("/a", 5))
    assert net.got(back) == [msg("/a", 5)]
    net.send(back, msg("/from/ana"))
    assert net.got(bob) == [msg("/from/ana")]
    assert net.got(bob) == []  # the user list never changed


def test_a_resume_takes_over_a_connection_that_still_looks_open() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana)
    token = start_session(net, ana)
    net.send(bob, msg("/a", 1), msg("/a", 2), msg("/a", 3))
    # ana read only the first before its Wi-Fi went: what it missed comes again
    back = resume(net, token, 1)
    assert net.got(back) == [msg("/oscrouter/session/resumed", 1), msg("/a", 2), msg("/a", 3)]
    assert net.sinks[ana.id].closed and not ana.accepts_input
    net.leave(ana)  # the old connection's end changes nothing now
    net.send(bob, msg("/a", 4))
    assert net.got(back) == [msg("/a", 4)]
    assert net.got(bob) == []
    assert list(net.hub.directory.groups["band"].users) == ["ana", "bob"]


def test_the_numbering_goes_on_across_resumes_and_a_second_request_keeps_it() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana)
    token = start_session(net, ana, 10)
    net.send(bob, msg("/a", 1))
    back = resume(net, token, 1)
    net.got(back)
    assert start_session(net, back, 20) == token  # same token, new seconds, not numbered
    net.send(bob, msg("/a", 2))
    net.leave(back)
    again = resume(net, token, 1, framing=Framing.SLIP)  # another framing: packets kept unframed
    assert net.got(again) == [msg("/oscrouter/session/resumed", 1), msg("/a", 2)]


def test_what_cannot_be_resumed_gets_resume_expired_and_may_register() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    net.send(bob, msg("/a", 1), msg("/a", 2))
    net.send(ana, msg("/oscrouter/session/ack", 2))
    net.leave(ana)
    for group, tok, received in [
        ("band", "not-a-token", 0),
        ("other", token, 2),  # the token is for another group
        ("band", token, 1),  # acknowledged already: no longer kept
        ("band", token, 3),  # more than was sent
    ]:
        stranger = resume(net, tok, received, group)
        assert error_of(net, stranger) == "resume_expired"
        assert stranger.accepts_input  # not closed: it may register instead
    net.send(stranger, msg("/oscrouter/register", "cy", "pw", "band", "gpw"))
    assert stranger.state is SessionState.REGISTERED
    back = resume(net, token, 2)  # the failures left the held place as it was
    assert net.got_messages(back)[0] == ("/oscrouter/session/resumed", [2])


def test_a_held_place_ends_after_its_seconds_and_the_user_leaves() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana, 5)
    net.leave(ana)
    net.tick(3)
    assert net.got(bob) == []
    net.tick(3)
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["bob"])]
    assert error_of(net, resume(net, token, 0)) == "resume_expired"


def test_asking_zero_or_a_cap_of_zero_means_no_session() -> None:
    net = Net(Limits(max_session_seconds=0))
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/session", 30))
    assert net.got_messages(ana) == [("/oscrouter/session", ["", 0])]
    capped = Net(Limits(max_session_seconds=60))
    bob, cy = capped.join("bob"), capped.join("cy")
    capped.got(bob)
    capped.send(bob, msg("/oscrouter/session", 3600))
    assert capped.got_messages(bob)[0][1][1] == 60
    capped.send(bob, msg("/oscrouter/session", 0))  # ends it
    assert capped.got_messages(bob) == [("/oscrouter/session", ["", 0])]
    capped.leave(bob)
    assert capped.got_messages(cy) == [("/oscrouter/userlist", ["cy"])]  # left at once


def test_more_than_the_bound_unacknowledged_loses_resumability_not_the_connection() -> None:
    net = Net(Limits(max_session_bytes=1000))
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    for _ in range(20):
        net.send(bob, msg("/blob", b"x" * 100))  # about 120 bytes each
    assert len(net.got(ana)) == 20 and ana.accepts_input
    stranger = resume(net, token, 20)
    assert error_of(net, stranger) == "resume_expired"
    net.send(ana, msg("/oscrouter/session/ack", 20))  # all of it: resumable again
    net.send(bob, msg("/a", 21))
    assert net.got(ana) == [msg("/a", 21)]
    back = resume(net, token, 20)
    assert net.got(back) == [msg("/oscrouter/session/resumed", 20), msg("/a", 21)]


def test_a_held_place_past_the_bound_ends_at_the_next_tick() -> None:
    net = Net(Limits(max_session_bytes=1000))
    ana, bob, cy = net.join("ana"), net.join("bob"), net.join("cy")
    start_session(net, ana)
    net.leave(ana)
    for _ in range(20):
        net.send(bob, msg("/blob", b"x" * 100))
    net.got(cy)
    net.tick(1)
    assert net.got_messages(cy) == [("/oscrouter/userlist", ["bob", "cy"])]


def test_acks_and_requests_outside_the_contract_are_bad_session() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/session/ack", 1))
    assert error_of(net, ana) == "bad_session"  # no session yet
    start_session(net, ana)
    for bad in (msg("/oscrouter/session/ack", 5), msg("/oscrouter/session", "x")):
        net.send(ana, bad)
        assert error_of(net, ana) == "bad_session"
    assert ana.accepts_input
    net.send(ana, msg("/oscrouter/session/resume", "band", "t", 0))
    assert error_of(net, ana) == "already_registered"
    stranger = net.connect()
    net.send(stranger, msg("/oscrouter/session", 30))
    assert error_of(net, stranger) == "not_registered"


def test_a_held_place_counts_at_its_address_and_gives_way_to_its_user_registering_anew() -> None:
    net = Net(Limits(max_connections_per_address=2))
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    net.leave(ana)
    assert net.hub.statistics().places_held == 1
    again = net.join("ana")  # an old client that does not resume: takes the place's room
    assert again.state is SessionState.REGISTERED
    assert error_of(net, resume(net, token, 0)) == "resume_expired"
    net.got(bob)
    net.send(bob, msg("/a"))
    assert net.got(again) == [msg("/a")]


def test_followers_stay_followers_across_a_resume_and_the_held_place_keeps_the_state() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.send(ana, msg("/oscrouter/state/follow", 1))
    token = start_session(net, ana)
    net.leave(ana)
    net.send(bob, msg("/oscrouter/state", "/fader", 0.5))
    back = resume(net, token, 0)
    assert net.got(back) == [
        msg("/oscrouter/session/resumed", 0),
        msg("/oscrouter/state", "/fader", 0.5),
    ]
    net.send(bob, msg("/oscrouter/state", "/fader", 0.25))
    assert net.got(back) == [msg("/oscrouter/state", "/fader", 0.25)]


def test_the_routers_own_end_of_a_member_holds_its_place() -> None:
    net = Net(Limits(idle_timeout=10))
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    net.tick(6)
    net.send(bob, msg("/oscrouter/ping"))
    net.tick(6)  # ana is closed for idle_timeout; bob is not
    assert not ana.accepts_input
    net.got(bob)
    back = resume(net, token, 0)
    [resumed, error] = net.got_messages(back)
    assert resumed == ("/oscrouter/session/resumed", [0])
    assert error[1][0] == "idle_timeout"  # the last thing sent on the old connection, numbered
    assert net.got(bob) == []


def test_what_comes_with_the_resume_in_the_same_read_is_a_members() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    net.leave(ana)
    net.got(bob)
    back = net.connect()
    net.send(back, msg("/oscrouter/session/resume", "band", token, 0), msg("/from/ana", 1))
    assert net.got(bob) == [msg("/from/ana", 1)]
    assert net.got_messages(back) == [("/oscrouter/session/resumed", [0])]


def test_a_member_closed_for_what_it_sent_leaves_at_once_session_or_not() -> None:
    net = Net(Limits(max_packet_size=1024))
    ana, bob = net.join("ana"), net.join("bob")
    token = start_session(net, ana)
    net.got(bob)
    net.send(ana, msg("/big", b"x" * 2000))  # packet_too_large: fatal
    assert not ana.accepts_input
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["bob"])]
    assert error_of(net, resume(net, token, 0)) == "resume_expired"


def test_a_session_that_counts_messages_numbers_each_message_of_a_bundle() -> None:
    # sclang and Pd's [oscparse] are handed a bundle's messages one by one, with nothing to say
    # where a bundle ends: such a client counts messages, and so does its session.
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana)
    net.send(ana, msg("/oscrouter/session", 30, "messages"))
    [(_, [token, _])] = net.got_messages(ana)
    assert isinstance(token, str)
    chord = bundle(IMMEDIATELY, msg("/n", 60), msg("/n", 64), msg("/n", 67))
    net.send(bob, msg("/a", 1), chord, msg("/a", 2))  # messages 1, 2-4, 5
    assert net.got(ana) == [msg("/a", 1), chord, msg("/a", 2)]
    net.send(ana, msg("/oscrouter/session/ack", 3))  # inside the chord: the chord is kept
    net.leave(ana)
    net.send(bob, msg("/a", 3))  # 6
    # A resume inside a bundle cannot be: resume_expired, and the place stays held.
    inside = resume(net, token, 3)
    assert error_of(net, inside) == "resume_expired"
    back = resume(net, token, 1)
    assert net.got(back) == [
        msg("/oscrouter/session/resumed", 1),
        chord,
        msg("/a", 2),
        msg("/a", 3),
    ]
    net.send(back, msg("/oscrouter/session", 30))  # the unit cannot change
    assert error_of(net, back) == "bad_session"
