"""Packets and presence from elsewhere (another node, in cluster mode), with bytes only."""

from __future__ import annotations

from support.net import LP, SLIP, Net, error_of
from support.osc import IMMEDIATELY, bundle, msg, register
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import MembershipEvent
from tcposcrouter.core.session import SessionState
from tcposcrouter.osc.framing import frame


def test_a_packet_from_elsewhere_reaches_everyone_but_its_sender() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob", framing=SLIP)
    net.got(ana)
    assert net.hub.cluster.deliver("band", "zoe", msg("/from/far", 1)) == 2
    net.collect()
    assert net.got(ana) == [msg("/from/far", 1)] and net.got(bob) == [msg("/from/far", 1)]


def test_no_echo_to_the_senders_own_connections_here() -> None:
    net = Net()
    ana = net.join("ana")
    ana2 = net.join("ana")
    bob = net.join("bob")
    for s in (ana, ana2, bob):
        net.got(s)
    assert net.hub.cluster.deliver("band", "ana", msg("/mine", 1)) == 1
    net.collect()
    assert net.got(ana) == [] and net.got(ana2) == [] and net.got(bob) == [msg("/mine", 1)]


def test_order_of_one_sender_is_kept_and_interleaves_with_local_packets() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(bob)
    net.hub.cluster.deliver("band", "zoe", msg("/z", 1))
    net.hub.receive(ana, frame(msg("/a", 2), LP), net.now)
    net.hub.cluster.deliver("band", "zoe", msg("/z", 3))
    net.collect()
    assert net.got(bob) == [msg("/z", 1), msg("/a", 2), msg("/z", 3)]


def test_bundles_from_elsewhere_arrive_byte_exact() -> None:
    net = Net()
    bob = net.join("bob")
    net.got(bob)
    packet = bundle(IMMEDIATELY, msg("/one", 1), msg("/two", 2.5))
    net.hub.cluster.deliver("band", "zoe", packet)
    net.collect()
    assert net.got(bob) == [packet]


def test_invalid_or_router_packets_from_elsewhere_are_dropped_and_counted() -> None:
    net = Net()
    bob = net.join("bob")
    net.got(bob)
    assert net.hub.cluster.deliver("band", "zoe", b"/bad") == 0
    assert net.hub.cluster.deliver("band", "zoe", msg("/oscrouter/userlist", "x")) == 0
    assert net.hub.cluster.deliver("nobody-here", "zoe", msg("/x")) == 0
    net.collect()
    assert net.got(bob) == []
    stats = net.hub.statistics()
    assert stats.drops == {"packet_invalid": 1, "unknown_command": 1}
    assert stats.packets_from_elsewhere == 2


def test_users_elsewhere_appear_in_the_user_list() -> None:
    net = Net()
    ana = net.join("ana")
    net.hub.cluster.remote_joined("band", "zoe")
    net.collect()
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "zoe"])]
    bob = net.join("bob")
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "zoe", "bob"])]
    net.hub.cluster.remote_left("band", "zoe")
    net.collect()
    assert net.got_messages(bob) == [("/oscrouter/userlist", ["ana", "bob"])]
    # A private message can go to a local user only; zoe's node would carry it.
    net.send(ana, msg("/oscrouter/private", "bob", "/hi", 1))
    assert net.got_messages(bob) == [("/oscrouter/private", ["ana", "/hi", 1])]


def test_membership_events_tell_an_edge_who_joins_and_leaves() -> None:
    net = Net()
    events: list[MembershipEvent] = []
    net.hub.cluster.subscribe(events.append)
    ana = net.join("ana")
    net.join("bob")
    net.leave(ana)
    assert [(e.kind, e.user, e.connections) for e in events] == [
        ("joined", "ana", 1),
        ("joined", "bob", 1),
        ("left", "ana", 0),
    ]
    net.hub.cluster.remote_joined("band", "zoe")  # presence from elsewhere is not announced again
    assert len(events) == 3


class Recorder:
    """An `Elsewhere` that keeps what the hub sends to other nodes."""

    def __init__(self) -> None:
        self.broadcasts: list[tuple[str, str, list[bytes]]] = []
        self.privates: list[tuple[str, str, bytes]] = []

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None:
        self.broadcasts.append((group, sender, packets))

    def private(self, group: str, target: str, message: bytes) -> None:
        self.privates.append((group, target, message))


def test_packets_go_elsewhere_only_while_the_group_has_users_there() -> None:
    net = Net()
    far = Recorder()
    net.hub.cluster.connect(far)
    ana = net.join("ana")
    net.send(ana, msg("/alone", 1))
    assert far.broadcasts == []  # nobody elsewhere: no traffic for Redis
    net.hub.cluster.remote_joined("band", "zoe")
    net.send(ana, msg("/a", 1), msg("/b", 2))
    assert far.broadcasts == [("band", "ana", [msg("/a", 1), msg("/b", 2)])]
    net.send(ana, msg("/oscrouter/private", "zoe", "/psst", 3))
    assert far.privates == [("band", "zoe", msg("/oscrouter/private", "ana", "/psst", 3))]
    net.hub.cluster.remote_left("band", "zoe")
    net.send(ana, msg("/again", 1))
    assert len(far.broadcasts) == 1


def test_a_private_message_from_elsewhere_reaches_its_target_only() -> None:
    net = Net()
    ana = net.join("ana")
    ana2 = net.join("ana")
    bob = net.join("bob")
    for s in (ana, ana2, bob):
        net.got(s)
    sent = msg("/oscrouter/private", "zoe", "/psst", 1)
    assert net.hub.cluster.deliver_private("band", "ana", sent) == 2
    assert net.hub.cluster.deliver_private("band", "nobody", sent) == 0
    net.collect()
    assert net.got(ana) == [sent] and net.got(ana2) == [sent] and net.got(bob) == []


def test_login_failures_are_shared_and_counted() -> None:
    net = Net()
    failures: list[tuple[str, str, str]] = []
    net.hub.cluster.subscribe_login_failures(lambda *failure: failures.append(failure))
    net.join("ana", password="right")
    guess = net.connect(address="198.51.100.7")
    net.send(guess, register("ana", password="wrong"))
    assert failures == [("198.51.100.7", "band", "ana")]
    # Five failures seen on other nodes: this node now throttles that address there too.
    for _ in range(5):
        net.hub.cluster.login_failed_elsewhere("203.0.113.9", "band", "ana", net.now)
    late = net.connect(address="203.0.113.9")
    net.send(late, register("ana", password="right"))
    assert error_of(net, late) == "login_throttled"


def test_a_group_known_from_elsewhere_is_joined_with_the_stores_hash() -> None:
    net = Net(hold_checks=True)
    net.hub.cluster.remote_joined("band", "zoe")
    ana = net.connect()
    net.send(ana, register("ana", group_password="gpw"))
    (check,) = net.checks
    assert check.creates_group and check.creates_user  # as far as this node knows
    check.learn(PasswordHash("gpw"), None)  # what the store said
    assert not check.creates_group and check.creates_user
    net.run_checks()
    assert ana.state is SessionState.REGISTERED
    bob = net.connect()
    net.send(bob, register("bob", group_password="other"))
    (check,) = net.checks
    check.learn(None, None)  # the group's hash is here now, from ana's join
    net.run_checks()
    assert error_of(net, bob) == "auth_failed"
