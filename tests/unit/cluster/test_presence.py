"""Who is on which other node (cluster/presence.py), from events and snapshots."""

from __future__ import annotations

from tcposcrouter.cluster.presence import RemotePresence


def test_a_user_is_elsewhere_while_any_other_node_has_it() -> None:
    presence = RemotePresence("me")
    assert not presence.joined("me", "band", "ana")  # this node's own events change nothing
    assert presence.joined("n1", "band", "ana")
    assert not presence.joined("n2", "band", "ana")
    presence.joined("n2", "band", "bob")
    assert sorted(presence.nodes_in("band")) == ["n1", "n2"]
    assert not presence.left("n1", "band", "ana")
    assert presence.nodes_in("band") == ["n2"]
    assert presence.left("n2", "band", "ana")
    assert presence.nodes_in("band") == ["n2"]  # bob is still there
    assert not presence.left("n2", "band", "ana")


def test_a_snapshot_adds_at_once_and_removes_at_the_second() -> None:
    presence = RemotePresence("me")
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("me", "band", "carl")])
    assert came == [("band", "bob")] and went == []  # ana may be on a node not back yet
    came, went = presence.replace([("n2", "band", "bob")])
    assert came == [] and went == [("band", "ana")]
    assert presence.nodes_in("band") == ["n2"]
    presence.joined("n1", "band", "ana")
    came, went = presence.replace([("n2", "band", "bob"), ("n1", "band", "ana")])
    assert came == [] and went == []
