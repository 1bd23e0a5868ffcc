"""The hub's limits (limits.Limits): every one enforced, with its reply and action."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import msg, register
from tcposcrouter.core.hub import PRE_REGISTER_MAX_PACKET_SIZE
from tcposcrouter.core.session import REFUSAL_GRACE_SECONDS, SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing


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


def test_too_many_connections_from_one_address() -> None:
    net = Net(Limits(max_connections_per_address=2))
    net.join("ana", address="192.0.2.1")
    net.join("ana", address="192.0.2.1")
    extra = net.connect(address="192.0.2.1")
    net.send(extra, register("ana"))
    assert error_of(net, extra) == "server_full"
    net.join("bob", address="192.0.2.2")  # another address is still welcome


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
    net.join("ana")
    assert net.hub.connections_from("192.0.2.1") == 1


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


def test_rate_limit_drops_with_one_reply_per_episode() -> None:
    net = Net(Limits(rate_limit_packets=10, rate_limit_bytes=0))
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, *(msg("/flood", i) for i in range(100)))
    assert len(net.got(bob)) == 20 - 1  # the burst (two seconds' worth), less the register
    replies = net.got_messages(ana)
    assert [a for a, _ in replies] == ["/oscrouter/error"]
    assert replies[0][1][0] == "rate_limited"
    assert ana.state is SessionState.REGISTERED
    assert net.hub.statistics().drops["rate_limited"] == 81
    net.now += 1.0  # ten more tokens
    net.send(ana, *(msg("/later", i) for i in range(10)))
    assert len(net.got(bob)) == 10
    net.send(ana, msg("/over", 1))
    assert error_of(net, ana) == "rate_limited"  # a new episode, a new reply


def test_byte_rate_limit() -> None:
    net = Net(Limits(rate_limit_packets=0, rate_limit_bytes=1000, max_packet_size=2000))
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.send(ana, *(msg("/b", "x" * 400) for _ in range(10)))
    delivered = len(net.got(bob))
    assert 2 <= delivered < 10
    assert error_of(net, ana) == "rate_limited"


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


def test_failed_logins_are_throttled_per_address() -> None:
    net = Net(Limits(login_failures_allowed=3))
    net.join("ana", password="right")
    for _ in range(3):
        guess = net.connect(address="203.0.113.9")
        net.send(guess, register("ana", password="wrong"))
        assert error_of(net, guess) == "auth_failed"
    # Locked now: even the right password gets no answer about the password.
    locked = net.connect(address="203.0.113.9")
    net.send(locked, register("ana", password="right"))
    assert error_of(net, locked) == "login_throttled"
    # Somebody else is not affected.
    net.join("ana", password="right", address="198.51.100.4")
    net.now += 1.0
    net.join("ana", password="right", address="203.0.113.9")


def test_slow_consumer_is_reset_and_leaves_its_group_at_once() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.got(bob)
    net.hub.slow_consumer(ana, 5_000_000)
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
