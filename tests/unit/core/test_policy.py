"""The error policy (core/policy.py): replies, counts and closes; what time decides once a second,
looking only at the connections that can have something due; slow consumers reset; a spent rate
budget told once."""

from __future__ import annotations

import pytest

from support.net import Net, error_of
from support.osc import msg, register
from tcposcrouter.core.policy import ERROR_EPISODE_SECONDS, IDLE_CHECKS_PER_TICK
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing


def test_register_timeout() -> None:
    net = Net(Limits(register_timeout=10))
    quiet = net.connect()
    talker = net.connect()
    net.send_bytes(talker, b"\x00\x00")  # half a length prefix: not a register
    net.tick(9)
    assert quiet.accepts_input  # still waiting for its register
    net.tick(1)
    assert quiet.state is SessionState.CLOSING and net.got(quiet) == []
    assert error_of(net, talker) == "register_timeout"


def test_idle_timeout_closes_and_pings_keep_alive() -> None:
    net = Net(Limits(idle_timeout=60))
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    for _ in range(5):
        net.tick(30)
        net.send(ana, msg("/oscrouter/ping", "ana"))
    assert ana.state is SessionState.REGISTERED
    assert bob.state is SessionState.CLOSING
    assert error_of(net, bob) == "idle_timeout"


def test_idle_timeout_is_off_by_default_for_listeners() -> None:
    net = Net()
    listener = net.join("visuals")
    player = net.join("ana")
    for _ in range(10):
        net.tick(60)
        net.send(player, msg("/note", 60))
    assert listener.state is SessionState.REGISTERED
    assert len(net.got(listener)) == 1 + 10  # the user list with ana, then every note


def test_over_its_rate_a_sender_is_read_more_slowly_and_nothing_is_dropped() -> None:
    net = Net(Limits(rate_limit_packets=10, rate_limit_bytes=0))
    ana = net.join("ana")  # its register took one packet of the budget of 20
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, *(msg("/flood", i) for i in range(100)))
    assert net.got_messages(bob) == [("/flood", [i]) for i in range(100)]
    assert net.pauses[ana.id] == pytest.approx(8.1)  # 81 packets owed at 10/s
    replies = net.got_messages(ana)
    assert [(a, args[0]) for a, args in replies] == [("/oscrouter/error", "rate_limited")]
    assert ana.state is SessionState.REGISTERED
    net.now += 8.1
    net.send(ana, msg("/again", 1))  # paused again at once, but the same episode: no reply
    assert net.pauses[ana.id] == pytest.approx(0.1) and net.got(ana) == []
    assert len(net.got(bob)) == 1
    stats = net.hub.statistics()
    assert stats.rate_limit_pauses == 2 and "rate_limited" not in stats.drops
    net.tick(3.0)  # a full budget again: the episode is over
    net.send(ana, *(msg("/over", i) for i in range(21)))
    assert error_of(net, ana) == "rate_limited"  # a new episode, a new notice


def test_byte_rate_budget() -> None:
    net = Net(Limits(rate_limit_packets=0, rate_limit_bytes=1000, max_packet_size=2000))
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, *(msg("/b", "x" * 400) for _ in range(10)))
    assert len(net.got(bob)) == 10
    assert net.pauses[ana.id] > 1.0
    assert error_of(net, ana) == "rate_limited"


def test_a_connection_that_has_not_registered_is_paused_but_gets_no_notice() -> None:
    net = Net(Limits(rate_limit_packets=1, rate_limit_bytes=0))
    bob = net.join("bob")
    net.now += 10
    net.got(bob)
    ana = net.connect()
    net.send(ana, register("ana"), *(msg("/n", i) for i in range(5)))
    assert ana.state is SessionState.REGISTERED and net.pauses[ana.id] > 0
    assert [a for a, _ in net.got_messages(ana)][:2] == [
        "/oscrouter/register/ana/1",
        "/oscrouter/register",
    ]
    assert [a for a, _ in net.got_messages(bob)] == ["/oscrouter/userlist"] + ["/n"] * 5


def test_a_close_that_does_not_finish_becomes_a_reset() -> None:
    net = Net(Limits(close_grace=3.0))
    stranger = net.connect()
    net.send(stranger, msg("/not/a/register"))
    assert net.sinks[stranger.id].closed and not net.sinks[stranger.id].was_reset
    net.tick(2)
    assert not net.sinks[stranger.id].was_reset
    net.tick(1)
    assert net.sinks[stranger.id].was_reset  # its peer never took the last bytes: reset


def test_slow_consumer_is_reset_and_leaves_its_group_at_once() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.hub.errors.slow_consumer(ana, 5_000_000, net.now)
    net.collect()
    # Its reply would only queue behind what it does not read: none; the connection is reset.
    assert net.sinks[ana.id].was_reset and net.got(ana) == []
    assert ana.state is SessionState.CLOSING
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["bob"])]
    stats = net.hub.statistics()
    assert stats.slow_consumer_resets == 1 and stats.errors["slow_consumer"] == 1
    net.send(bob, msg("/after", 1))  # nothing more reaches the reset connection
    assert net.sinks[ana.id].writes == net.sinks[ana.id].writes[:3]


def test_rate_limit_off() -> None:
    net = Net(Limits(rate_limit_packets=0, rate_limit_bytes=0))
    ana = net.join("ana")
    bob = net.join("bob", framing=Framing.SLIP)
    net.got(bob)
    net.send(ana, *(msg("/flood", i) for i in range(10_000)))
    assert len(net.got(bob)) == 10_000


def test_a_rejected_message_is_answered_and_counted() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.errors.refuse(ana, RemoteError(ErrorCode.PACKET_INVALID, "a text message"), net.now)
    net.collect()
    assert error_of(net, ana) == ErrorCode.PACKET_INVALID
    assert net.hub.statistics().errors == {ErrorCode.PACKET_INVALID: 1}


def test_an_error_the_transport_closed_on_is_counted_without_a_reply() -> None:
    net = Net()
    ana = net.join("ana", websocket=True)
    net.hub.errors.count(ana, ErrorCode.PACKET_TOO_LARGE, "message too big")
    net.collect()
    assert net.got(ana) == []
    assert net.hub.statistics().errors == {ErrorCode.PACKET_TOO_LARGE: 1}


def test_a_members_repeated_error_is_logged_once_then_as_one_line_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = Net()
    ana = net.join("ana")
    net.join("bob")
    caplog.set_level("INFO", logger="tcposcrouter.hub")
    for _ in range(5):
        net.send(ana, msg("/oscrouter/private", "nobody", "/hi"))
    lines = [r.getMessage() for r in caplog.records if "unknown_user" in r.getMessage()]
    assert len(lines) == 1  # the first of the episode
    assert ana.state is SessionState.REGISTERED  # not fatal: the member plays on
    net.tick(ERROR_EPISODE_SECONDS)
    lines = [r.getMessage() for r in caplog.records if "unknown_user" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("unknown_user 4 more times in 0 s")


def test_a_crowd_of_quiet_members_is_not_walked_by_the_tick_yet_timeouts_and_episodes_are_seen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = Net(Limits(register_timeout=10))
    members = [_member(net, i) for i in range(50)]
    watched = net.hub._lifecycle.watched
    assert len(watched) == 50  # each registered since the last tick
    net.tick(1)
    assert watched == {}  # registered, nothing open: nothing to look at
    stranger = net.connect()
    assert stranger.id in watched
    caplog.set_level("INFO", logger="tcposcrouter.hub")
    for _ in range(3):
        net.send(members[0], msg("/oscrouter/private", "nobody", "/hi"))
    assert list(watched) == [stranger.id, members[0].id]  # an episode is open
    net.tick(ERROR_EPISODE_SECONDS)
    assert stranger.state is SessionState.CLOSING  # its register timeout came
    assert net.got(stranger) == []  # it never spoke: no reply, closed
    lines = [r.getMessage() for r in caplog.records if "unknown_user" in r.getMessage()]
    assert lines[-1].endswith("unknown_user 2 more times in 0 s")  # the episode's end
    assert list(watched) == [stranger.id]  # closing, until it is gone
    net.hub.gone(stranger, net.now)
    assert watched == {}


def test_an_idle_timeout_finds_every_silent_member_of_a_crowd_a_slice_a_tick() -> None:
    net = Net(Limits(idle_timeout=60))
    crowd = [_member(net, i) for i in range(IDLE_CHECKS_PER_TICK + 500)]
    net.tick(1)  # each new member looked at once
    net.tick(59)  # every member's silence has reached the timeout
    closed = [s for s in crowd if s.state is SessionState.CLOSING]
    assert 0 < len(closed) <= IDLE_CHECKS_PER_TICK  # at most one slice a tick
    net.tick(1)
    closed = [s for s in crowd if s.state is SessionState.CLOSING]
    assert len(closed) == len(crowd)
    assert net.got_messages(crowd[-1])[-1] == (
        "/oscrouter/error",
        ["idle_timeout", "nothing received for 60 s"],
    )


def _member(net: Net, number: int) -> Session:
    """One of a crowd: ten to a group, each from an address of its own."""
    address = f"10.0.{number // 200}.{number % 200 + 1}"
    return net.join(f"u{number}", f"g{number // 10}", address=address)
