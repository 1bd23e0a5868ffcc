"""Packets and presence from elsewhere (another node, in cluster mode), with bytes only."""

from __future__ import annotations

from support.net import LP, SLIP, Net, error_of
from support.osc import IMMEDIATELY, bundle, msg, register
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import MembershipEvent
from tcposcrouter.core.outbox import Mailbox
from tcposcrouter.core.session import SessionState
from tcposcrouter.core.state import GroupState, StoredChange
from tcposcrouter.core.tempo import TempoChange, Timeline
from tcposcrouter.osc.framing import frame
from tcposcrouter.osc.tempo import TempoRequest, read_tempo_message


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

    def state_changed(self, group: str, sender: str, address: str, message: bytes | None) -> bool:
        return False  # as while the store is away


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


# -- the group tempo and state a cluster shares (core/state.py's apply_stored, core/tempo.py) --


class Shared:
    """What a node of a cluster records of its members' changes (the store's side, as
    cluster/traffic.py and cluster/ensemble.py hand them over)."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str, str, bytes | None]] = []
        self.tempos: list[tuple[str, TempoChange]] = []

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None:
        pass

    def private(self, group: str, target: str, message: bytes) -> None:
        pass

    def state_changed(self, group: str, sender: str, address: str, message: bytes | None) -> bool:
        self.states.append((group, sender, address, message))
        return True

    def change(self, group: str, change: TempoChange, asker: Mailbox) -> bool:
        self.tempos.append((group, change))
        return True


def clustered() -> tuple[Net, Shared]:
    net = Net()
    shared = Shared()
    net.hub.cluster.connect(shared, shared)
    return net, shared


def test_a_tempo_change_is_made_in_the_store_and_told_when_the_store_has_it() -> None:
    net, shared = clustered()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana), net.got(bob)
    port = net.hub.cluster
    net.send(ana, msg("/oscrouter/tempo/set", 90.0))
    assert [change for _, change in shared.tempos] == [TempoRequest(90.0, None, None)]
    assert net.got(ana) == [] and net.got(bob) == []  # told once the store has it
    net.send(ana, msg("/oscrouter/tempo/set", 5000.0))  # refused here, never sent
    assert error_of(net, ana) == "bad_tempo" and len(shared.tempos) == 1
    known = port.wall_timeline("band", net.now)
    assert known is not None
    lines, version = known
    changed = port.changed_timeline(lines, version, TempoRequest(90.0, None, None), net.now)
    assert port.tempo_recorded("band", changed, version + 1, net.now)
    net.collect()
    told = [read_tempo_message(packet) for packet in net.got(ana)]
    assert told == [read_tempo_message(packet) for packet in net.got(bob)]
    assert told[0] is not None and told[0][2] == 90.0
    assert not port.tempo_recorded("band", changed, version + 1, net.now)  # had it: nobody twice
    assert not port.tempo_recorded("nowhere", changed, 9, net.now)


def test_changes_from_another_node_are_delivered_and_kept_in_the_stores_order() -> None:
    net, shared = clustered()
    ana, bob = net.join("ana"), net.join("bob")
    net.send(bob, msg("/oscrouter/state/follow", 1))
    net.got(ana), net.got(bob)
    port = net.hub.cluster
    port.state_recorded("band", "zoe", StoredChange(1, "/fader", msg("/fader", 0.5)), here=False)
    port.state_recorded("band", "zoe", StoredChange(1, "/fader", msg("/fader", 0.7)), here=False)
    port.state_recorded("band", "zoe", StoredChange(2, "/fader", None), here=False)
    net.collect()
    assert net.got(ana) == [msg("/fader", 0.5)]  # the second record 1 was had already
    assert net.got(bob) == [
        msg("/oscrouter/state", "/fader", 0.5),
        msg("/oscrouter/state/clear", "/fader"),
    ]
    assert shared.states == []  # from elsewhere: not sent back


def test_two_nodes_changing_one_address_at_once_end_with_the_stores_last() -> None:
    net, shared = clustered()
    ana, bob = net.join("ana"), net.join("bob")
    net.send(bob, msg("/oscrouter/state/follow", 1))
    net.got(ana), net.got(bob)
    port = net.hub.cluster
    net.send(ana, msg("/oscrouter/state", "/scene", 1))  # here, delivered at once
    assert shared.states == [("band", "ana", "/scene", msg("/scene", 1))]
    assert net.got(bob) == [msg("/oscrouter/state", "/scene", 1)]
    # Another node's change of /scene comes first in the store's order: delivered, not kept.
    port.state_recorded("band", "zoe", StoredChange(1, "/scene", msg("/scene", 2)), here=False)
    net.collect()
    assert net.got(bob) == [msg("/oscrouter/state", "/scene", 2)]
    # This node's own change comes back after it: it is the group's; the follower is told again.
    port.state_recorded("band", "ana", StoredChange(2, "/scene", msg("/scene", 1)), here=True)
    net.collect()
    assert net.got(bob) == [msg("/oscrouter/state", "/scene", 1)]
    assert net.got(ana) == [msg("/scene", 2)]  # plain: heard zoe's, no correction
    net.send(ana, msg("/oscrouter/state"))
    assert net.got_messages(ana)[1] == ("/scene", [1])
    # Two changes of this node in flight: the first one's record keeps the second's value.
    net.send(ana, msg("/oscrouter/state", "/scene", 3))
    net.send(ana, msg("/oscrouter/state", "/scene", 4))
    port.state_recorded("band", "ana", StoredChange(3, "/scene", msg("/scene", 3)), here=True)
    net.send(ana, msg("/oscrouter/state"))
    assert net.got_messages(ana)[1] == ("/scene", [4])


def test_after_the_store_was_away_the_copy_becomes_the_stores() -> None:
    net, _ = clustered()
    ana, bob = net.join("ana"), net.join("bob")
    net.send(bob, msg("/oscrouter/state/follow", 1))
    net.send(ana, msg("/oscrouter/state", "/mine", 1))
    net.got(ana), net.got(bob)
    port = net.hub.cluster
    ((name, lines, messages),) = port.copies(net.now)
    assert name == "band" and messages == [("/mine", msg("/mine", 1))]
    faster = port.changed_timeline(lines, 0, TempoRequest(140.0, None, None), net.now)
    store = Timeline.of_lines([line.on_router_clock(port.wall_clock_offset) for line in faster], 7)
    port.adopt_ensemble("band", store, GroupState.of_messages([("/x", msg("/x", 2))], 4), net.now)
    net.collect()
    told = [read_tempo_message(packet) for packet in net.got(ana)]
    assert len(told) == 1 and told[0] is not None and told[0][2] == 140.0
    assert net.got_messages(bob)[1:] == [
        ("/oscrouter/state/begin", [1]),
        ("/oscrouter/state", ["/x", 2]),
        ("/oscrouter/state/end", []),
    ]
