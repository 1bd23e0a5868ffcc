"""Packets and presence from elsewhere (another node, in cluster mode), with bytes only."""

from __future__ import annotations

from support.net import LP, SLIP, Net
from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.core.directory import MembershipEvent
from tcposcrouter.osc.framing import frame


def test_a_packet_from_elsewhere_reaches_everyone_but_its_sender() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob", framing=SLIP)
    net.got(ana)
    assert net.hub.deliver_from_elsewhere("band", "zoe", msg("/from/far", 1)) == 2
    net.collect()
    assert net.got(ana) == [msg("/from/far", 1)] and net.got(bob) == [msg("/from/far", 1)]


def test_no_echo_to_the_senders_own_connections_here() -> None:
    net = Net()
    ana = net.join("ana")
    ana2 = net.join("ana")
    bob = net.join("bob")
    for s in (ana, ana2, bob):
        net.got(s)
    assert net.hub.deliver_from_elsewhere("band", "ana", msg("/mine", 1)) == 1
    net.collect()
    assert net.got(ana) == [] and net.got(ana2) == [] and net.got(bob) == [msg("/mine", 1)]


def test_order_of_one_sender_is_kept_and_interleaves_with_local_packets() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(bob)
    net.hub.deliver_from_elsewhere("band", "zoe", msg("/z", 1))
    net.hub.receive(ana, frame(msg("/a", 2), LP), net.now)
    net.hub.deliver_from_elsewhere("band", "zoe", msg("/z", 3))
    net.collect()
    assert net.got(bob) == [msg("/z", 1), msg("/a", 2), msg("/z", 3)]


def test_bundles_from_elsewhere_arrive_byte_exact() -> None:
    net = Net()
    bob = net.join("bob")
    net.got(bob)
    packet = bundle(IMMEDIATELY, msg("/one", 1), msg("/two", 2.5))
    net.hub.deliver_from_elsewhere("band", "zoe", packet)
    net.collect()
    assert net.got(bob) == [packet]


def test_invalid_or_router_packets_from_elsewhere_are_dropped_and_counted() -> None:
    net = Net()
    bob = net.join("bob")
    net.got(bob)
    assert net.hub.deliver_from_elsewhere("band", "zoe", b"/bad") == 0
    assert net.hub.deliver_from_elsewhere("band", "zoe", msg("/oscrouter/userlist", "x")) == 0
    assert net.hub.deliver_from_elsewhere("nobody-here", "zoe", msg("/x")) == 0
    net.collect()
    assert net.got(bob) == []
    stats = net.hub.statistics()
    assert stats.drops == {"packet_invalid": 1, "unknown_command": 1}
    assert stats.packets_from_elsewhere == 2


def test_users_elsewhere_appear_in_the_user_list() -> None:
    net = Net()
    ana = net.join("ana")
    net.hub.remote_joined("band", "zoe")
    net.collect()
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "zoe"])]
    bob = net.join("bob")
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "zoe", "bob"])]
    net.hub.remote_left("band", "zoe")
    net.collect()
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["ana", "bob"])]
    # A private message can go to a local user only; zoe's node would carry it.
    net.send(ana, msg("/oscrouter/private", "bob", "/hi", 1))
    assert net.got_messages(bob) == [("/oscrouter/private", ["ana", "/hi", 1])]


def test_membership_events_tell_an_edge_who_joins_and_leaves() -> None:
    net = Net()
    events: list[MembershipEvent] = []
    net.hub.subscribe(events.append)
    ana = net.join("ana")
    net.join("bob")
    net.leave(ana)
    assert [(e.kind, e.user, e.connections) for e in events] == [
        ("joined", "ana", 1),
        ("joined", "bob", 1),
        ("left", "ana", 0),
    ]
    net.hub.remote_joined("band", "zoe")  # presence from elsewhere is not announced again
    assert len(events) == 3
