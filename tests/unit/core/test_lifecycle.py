"""A connection's life in the hub (core/lifecycle.py): strangers kept to small packets, members
leaving as the router ends them, everyone's goodbye at shutdown."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import msg
from tcposcrouter.core.lifecycle import PRE_REGISTER_MAX_PACKET_SIZE
from tcposcrouter.core.session import SessionState
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


def test_a_member_the_router_ends_leaves_its_group_at_once_and_is_forgotten_when_gone() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana)
    net.send_bytes(bob, b"\xff\xff\xff\xff")  # a broken frame: fatal
    assert bob.state is SessionState.CLOSING and net.sinks[bob.id].closed
    assert net.got_messages(ana)[-1] == ("/oscrouter/userlist", ["ana"])  # left at once
    assert net.hub.statistics().connections == 2  # its connection is still there...
    net.leave(bob)  # ...until the shell says it is gone
    assert bob.state.value == "closed" and net.hub.statistics().connections == 1
    net.leave(bob)  # gone twice is harmless
