"""The hub's limits (limits.Limits): every one enforced, with its reply and action."""

from __future__ import annotations

import pytest

from support.net import Net, error_of
from support.osc import IMMEDIATELY, bundle, msg, register
from tcposcrouter.core.hub import WAIT_FOR_CHECK
from tcposcrouter.core.lifecycle import PRE_REGISTER_MAX_PACKET_SIZE
from tcposcrouter.core.session import REFUSAL_GRACE_SECONDS, SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing, frame


def test_strangers_may_send_only_small_packets() -> None:
    net = Net()
    stranger = net.connect()
    net.send(stranger, msg("/oscrouter/register", "x" * PRE_REGISTER_MAX_PACKET_SIZE))
    assert error_of(net, stranger) == "packet_too_large"
    member = net.join("ana")
    net.got(member)
    net.send(member, msg("/big", "x" * PRE_REGISTER_MAX_PACKET_SIZE * 4))
    assert member.state is SessionState.REGISTERED  # a member may send up to the full limit


def test_too_many_connections_in_all() -> None:
    net = Net(Limits(max_connections=2))
    net.join("ana", address="192.0.2.1")
    net.join("bob", address="192.0.2.2")
    third = net.connect(address="192.0.2.3")
    net.send(third, register("carl"))
    assert error_of(net, third) == "server_full"
    assert third.state is SessionState.CLOSING


def test_registered_connections_from_one_address() -> None:
    net = Net(Limits(max_connections_per_address=2))
    net.join("ana", address="192.0.2.1")
    net.join("bob", address="192.0.2.1")
    extra = net.connect(address="192.0.2.1")
    net.send(extra, register("carl"))
    assert error_of(net, extra) == "server_full"
    net.join("carl", address="192.0.2.2")  # another address is still welcome


def test_a_returning_user_replaces_its_silent_connection_at_the_cap() -> None:
    net = Net(Limits(max_connections_per_address=2))
    dead = net.join("ana")  # its laptop's NAT mapping is gone; the router does not know yet
    bob = net.join("bob")
    net.now += 30
    net.send(bob, msg("/still", "here"))
    back = net.join("ana")  # the SuperCollider client reconnects with the same name
    assert dead.state is SessionState.CLOSING and back.state is SessionState.REGISTERED
    assert bob.state is SessionState.REGISTERED
    assert net.hub.statistics().replaced == 1
    assert net.got_messages(bob)[-1] == ("/oscrouter/userlist", ["ana", "bob"])


def test_waiting_connections_make_room_for_prompt_ones() -> None:
    net = Net(Limits(max_unregistered_per_address=3))
    loop = []
    for _ in range(10):  # a program reconnecting in a loop, every three seconds
        loop.append(net.connect())
        net.now += 3
    assert [s.state for s in loop[:7]] == [SessionState.CLOSING] * 7
    assert all(s.accepts_input for s in loop[7:])
    prompt = [net.join(f"student{i}") for i in range(20)]
    assert all(s.state is SessionState.REGISTERED for s in prompt)
    # The first prompt one made room once; the others registered before anyone had to wait.
    assert net.hub.statistics().made_room == 7 + 1


def test_a_refused_connection_that_never_speaks_is_closed_without_a_word() -> None:
    net = Net(Limits(max_connections=1))
    net.join("ana")
    silent = net.connect()
    net.tick(REFUSAL_GRACE_SECONDS)
    assert silent.state is SessionState.CLOSING
    assert net.got(silent) == []


def test_connection_counts_go_down_when_connections_close() -> None:
    net = Net(Limits(max_connections_per_address=1))
    first = net.join("ana")
    net.leave(first)
    net.join("bob")
    # bob got in, so ana's leaving freed her place; and bob holds the address's only one.
    extra = net.connect()
    net.send(extra, register("carl"))
    assert error_of(net, extra) == "server_full"


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


def test_group_full_and_too_many_groups() -> None:
    net = Net(Limits(max_users_per_group=2, max_groups=2))
    net.join("ana")
    net.join("bob")
    net.join("bob")  # another connection of a member is not another user
    carl = net.connect()
    net.send(carl, register("carl"))
    assert error_of(net, carl) == "group_full"
    net.join("dan", group="second")
    eve = net.connect()
    net.send(eve, register("eve", group="third"))
    assert error_of(net, eve) == "server_full"
    assert sorted(net.hub.directory.groups) == ["band", "second"]


def test_failed_logins_slow_that_account_from_that_address_only() -> None:
    net = Net(Limits(login_failures_allowed=3))
    net.join("ana", password="right")
    for _ in range(3):
        guess = net.connect(address="203.0.113.9")
        net.send(guess, register("ana", password="wrong"))
        assert error_of(net, guess) == "auth_failed"
    # That address at that account waits now: even the right password is not looked at.
    locked = net.connect(address="203.0.113.9")
    net.send(locked, register("ana", password="right"))
    assert error_of(net, locked) == "login_throttled"
    # Anybody else behind that address, and ana from anywhere else, is not affected.
    net.join("bob", address="203.0.113.9")
    net.join("ana", password="right", address="198.51.100.4")
    net.now += 1.0
    net.join("ana", password="right", address="203.0.113.9")


def test_packets_after_a_register_wait_for_its_check_in_order() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob")
    ana = net.connect()
    net.send(ana, register("ana"), msg("/one", 1))
    net.send(ana, msg("/two", 2))  # a read that came before the shell paused reading
    assert net.pauses[ana.id] == WAIT_FOR_CHECK and ana.state is SessionState.NEW
    assert net.got(bob) == []
    net.send(bob, msg("/meanwhile", 0))  # routing goes on for everyone else
    assert net.got_messages(ana) == []
    net.run_checks()
    assert net.pauses[ana.id] == 0.0
    assert [a for a, _ in net.got_messages(bob)] == ["/oscrouter/userlist", "/one", "/two"]


def test_without_a_cluster_a_register_joins_within_the_read_that_brought_it() -> None:
    net = Net()
    bob = net.join("bob")
    ana = net.connect()
    read = frame(register("ana"), Framing.LENGTH_PREFIX) + frame(
        msg("/one", 1), Framing.LENGTH_PREFIX
    )
    assert net.hub.receive(ana, read, net.now) == 0.0  # reading goes on: nothing to wait for
    assert ana.state is SessionState.REGISTERED and not net.hub.checks.waiting
    net.collect()
    assert [a for a, _ in net.got_messages(bob)] == ["/oscrouter/userlist", "/one"]
    assert [a for a, _ in net.got_messages(ana)][:2] == [
        "/oscrouter/register/ana/1",
        "/oscrouter/register",
    ]
    # Wrong passwords are known as quickly, and refused.
    eve = net.connect()
    net.hub.receive(eve, frame(register("bob", password="guess"), Framing.LENGTH_PREFIX), net.now)
    net.collect()
    assert error_of(net, eve) == "auth_failed"


def test_a_register_in_a_bundle_holds_what_follows_it() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob")
    ana = net.connect()
    sent = bundle(IMMEDIATELY, register("ana"), msg("/oscrouter/ping", "ana"), msg("/note", 1))
    net.send(ana, sent)
    assert ana.user is None and ana.checking and net.got(bob) == []
    net.run_checks()
    assert ana.state is SessionState.REGISTERED
    # The user list for the register, then what is left of the bundle, with its time tag.
    userlist, rest = net.got(bob)
    assert userlist.startswith(b"/oscrouter/userlist")
    assert rest == bundle(IMMEDIATELY, msg("/note", 1))


def test_a_failed_check_drops_what_waited_behind_it() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob", password="right")
    thief = net.connect()
    net.send(thief, register("bob", password="wrong"), msg("/spoof", 1))
    net.run_checks()
    assert thief.state is SessionState.CLOSING and error_of(net, thief) == "auth_failed"
    assert net.got(bob) == []


def test_two_first_players_of_a_new_group_race_and_the_second_is_checked_again() -> None:
    net = Net(hold_checks=True)
    ana, bob = net.connect(), net.connect()
    net.send(ana, register("ana", group_password="ours"))
    net.send(bob, register("bob", group_password="mine"))  # both saw no group yet
    net.run_checks()
    assert ana.state is SessionState.REGISTERED
    assert bob.state is SessionState.CLOSING and error_of(net, bob) == "auth_failed"
    assert net.hub.statistics().password_checks == 3


def test_a_close_that_does_not_finish_becomes_a_reset() -> None:
    net = Net(Limits(close_grace=3.0))
    stranger = net.connect()
    net.send(stranger, msg("/not/a/register"))
    assert net.sinks[stranger.id].closed and not net.sinks[stranger.id].reset
    net.tick(2)
    assert not net.sinks[stranger.id].reset
    net.tick(1)
    assert net.sinks[stranger.id].reset  # its peer never took the last bytes: reset


def test_shutdown_says_goodbye_after_what_is_queued() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob", framing=Framing.SLIP)
    net.got(ana)
    three = b"".join(frame(msg("/last", i), Framing.LENGTH_PREFIX) for i in range(3))
    net.hub.receive(ana, three, net.now)
    net.hub.shutdown(net.now)
    net.collect()
    got = net.got_messages(bob)
    assert [a for a, _ in got] == ["/last", "/last", "/last", "/oscrouter/error"]
    assert got[-1][1][0] == "server_shutdown"
    assert error_of(net, ana) == "server_shutdown"
    assert net.sinks[ana.id].closed and net.sinks[bob.id].closed
    net.leave(ana)
    net.leave(bob)
    assert net.hub.directory.groups == {}


def test_slow_consumer_is_reset_and_leaves_its_group_at_once() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.hub.errors.slow_consumer(ana, 5_000_000, net.now)
    net.collect()
    # Its reply would only queue behind what it does not read: none; the connection is reset.
    assert net.sinks[ana.id].reset and net.got(ana) == []
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
