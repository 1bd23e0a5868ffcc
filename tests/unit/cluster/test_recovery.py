"""Redis losing its memory (cluster/recovery.py), and groups kept apart (cluster/presence.py)."""

from __future__ import annotations

from tcposcrouter.cluster.presence import RemotePresence
from tcposcrouter.cluster.recovery import RECOVERY_SECONDS, StoreRecovery


def test_the_first_generation_a_node_sees_is_no_loss() -> None:
    recovery = StoreRecovery()
    assert not recovery.seen(b"g1", 0.0, {"b"})
    assert recovery.waiting_for(0.0) == set()
    assert not recovery.seen(b"g1", 5.0, {"b"})  # the same store, read again


def test_a_new_generation_waits_for_the_nodes_that_had_users() -> None:
    recovery = StoreRecovery()
    recovery.seen(b"g1", 0.0, set())
    assert recovery.seen(b"g2", 10.0, {"b", "c"})
    assert recovery.waiting_for(10.5) == {"b", "c"}
    recovery.written_back(["b", "z"])
    assert recovery.waiting_for(11.0) == {"c"}
    recovery.written_back(["c"])
    assert recovery.waiting_for(11.0) == set()


def test_a_node_away_is_not_waited_for_forever() -> None:
    recovery = StoreRecovery()
    recovery.seen(b"g1", 0.0, set())
    recovery.seen(b"", 1.0, {"b"})  # flushed: no generation at all is a new one too
    assert recovery.waiting_for(1.0 + RECOVERY_SECONDS - 0.1) == {"b"}
    assert recovery.waiting_for(1.0 + RECOVERY_SECONDS) == set()


def test_a_group_kept_apart_hears_nobody_elsewhere() -> None:
    presence = RemotePresence("a")
    presence.joined("b", "trio", "mallory")
    presence.joined("b", "band", "bea")
    assert presence.others() == {"b"}
    assert presence.keep_apart("trio") == [("trio", "mallory")]
    assert presence.nodes_in("trio") == []
    assert not presence.joined("c", "trio", "eve")  # events for it are not taken
    came, _ = presence.replace([("b", "trio", "mallory"), ("b", "band", "bea")])
    assert came == [] and presence.nodes_of("trio", "mallory") == set()
    assert presence.nodes_in("band") == ["b"]
    presence.apart.discard("trio")  # joined again
    assert presence.joined("b", "trio", "mallory")
