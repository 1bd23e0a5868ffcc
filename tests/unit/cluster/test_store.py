"""The store's keys and Lua scripts (cluster/store.py), run in a real redis-server: a join
creates or answers with the hash that exists, a leave removes the last trace of a user, a dead
node's users all leave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support.redis import RedisServer
from tcposcrouter.cluster.store import (
    DEAD_NODE_SCRIPT,
    JOIN_SCRIPT,
    LEAVE_SCRIPT,
    RESTORE_SCRIPT,
    STATE_SCRIPT,
    TEMPO_SCRIPT,
    Keys,
)

P = "t:"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[redis.Redis]:
    server = RedisServer(tmp_path / "redis")
    client = redis.Redis.from_url(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def join(store: redis.Redis, node: str, group: str, user: str, gh: str, uh: str) -> list[bytes]:
    arguments = [P, node, group, user, gh, uh, "0", "0", "0", ""]
    answer: list[bytes] = store.eval(JOIN_SCRIPT, 0, *arguments)
    return answer


def test_the_first_join_creates_the_group_and_a_second_is_told_the_hash_there(
    store: redis.Redis,
) -> None:
    keys = Keys(P)
    assert join(store, "n1", "band", "ana", "G1", "U1") == [b"ok"]
    assert store.hget(keys.groups, "band") == b"G1"
    assert store.hget(keys.users("band"), "ana") == b"U1"
    assert store.smembers(keys.members("band")) == {b"ana"}
    # Another node made the group with another password at the same moment: it is told.
    assert join(store, "n2", "band", "bob", "G2", "U2") == [b"group", b"G1"]
    assert join(store, "n2", "band", "ana", "G1", "U9") == [b"user", b"U1"]
    assert join(store, "n2", "band", "ana", "G1", "U1") == [b"ok"]  # ana on two nodes


def test_a_leave_removes_a_user_only_when_no_node_has_it(store: redis.Redis) -> None:
    keys = Keys(P)
    join(store, "n1", "band", "ana", "G", "U")
    join(store, "n2", "band", "ana", "G", "U")
    assert store.eval(LEAVE_SCRIPT, 0, P, "n1", "band", "ana") == 1
    assert store.hget(keys.users("band"), "ana") == b"U"  # still on n2
    assert store.eval(LEAVE_SCRIPT, 0, P, "n1", "band", "ana") == 0  # said once only
    assert store.eval(LEAVE_SCRIPT, 0, P, "n2", "band", "ana") == 1
    assert store.hget(keys.groups, "band") is None  # nobody left: the group's name is free


def test_a_dead_nodes_users_all_leave_once(store: redis.Redis) -> None:
    keys = Keys(P)
    store.sadd(keys.nodes, "n1")
    join(store, "n1", "band", "ana", "G", "U")
    join(store, "n1", "trio", "bob", "G", "U")
    join(store, "n2", "trio", "carl", "G", "U")
    assert store.eval(DEAD_NODE_SCRIPT, 0, P, "n1") == 2
    assert store.eval(DEAD_NODE_SCRIPT, 0, P, "n1") == 0  # another node running it too
    assert store.hget(keys.groups, "band") is None
    assert store.smembers(keys.members("trio")) == {b"carl"}
    assert not store.sismember(keys.nodes, "n1")


# -- the group tempo and state (docs/cluster.md) ----------------------------------------------


def load(store: redis.Redis, node: str, group: str, user: str, lines: bytes) -> list[object]:
    answer: list[object] = store.eval(
        JOIN_SCRIPT, 0, P, node, group, user, "G", "U", "0", "0", "1", lines
    )
    return answer


def test_a_join_that_loads_gets_the_groups_tempo_made_once_and_its_state(
    store: redis.Redis,
) -> None:
    first = load(store, "n1", "band", "ana", b"FIRST")
    assert first == [b"ok", b"FIRST", b"1", b"0", []]
    # Another node's joiner, later, gets the group's timeline, not the one it brings.
    assert load(store, "n2", "band", "bob", b"OTHER") == [b"ok", b"FIRST", b"1", b"0", []]
    store.eval(STATE_SCRIPT, 0, P, "band", "n1", "ana", "S", "/a", b"MSG-A")
    reply = load(store, "n2", "band", "carl", b"OTHER")
    assert reply[3:] == [b"1", [b"/a", b"1:MSG-A"]]


def test_a_tempo_change_is_kept_only_on_the_timeline_it_was_made_on(store: redis.Redis) -> None:
    load(store, "n1", "band", "ana", b"L0")
    pubsub = store.pubsub()
    pubsub.subscribe(Keys(P).ensemble_channel)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    assert store.eval(TEMPO_SCRIPT, 0, P, "band", "n1", "1", b"L1") == [b"ok", b"2"]
    # Another node made its change on the timeline before: told the one there now.
    assert store.eval(TEMPO_SCRIPT, 0, P, "band", "n2", "1", b"LX") == [b"changed", b"2", b"L1"]
    published = pubsub.get_message(timeout=1)
    assert published is not None and published["data"] == b"\x1f".join(
        [b"T", b"2", b"band", b"n1", b"", b"L1"]
    )
    assert pubsub.get_message(timeout=0.2) is None  # the refused change was not published
    pubsub.close()
    assert store.eval(TEMPO_SCRIPT, 0, P, "nobody", "n1", "0", b"L1") == [b"gone"]


def test_state_changes_are_numbered_kept_and_published(store: redis.Redis) -> None:
    keys = Keys(P)
    load(store, "n1", "band", "ana", b"L0")
    pubsub = store.pubsub()
    pubsub.subscribe(keys.ensemble_channel)
    pubsub.get_message(timeout=1)
    message = b"/doc\x00\x00\x00\x00,s\x00\x00any\x1fbytes:\x00\x00"
    assert store.eval(STATE_SCRIPT, 0, P, "band", "n1", "ana", "S", "/doc", message) == 1
    assert store.eval(STATE_SCRIPT, 0, P, "band", "n1", "ana", "S", "/x", b"X") == 2
    assert store.eval(STATE_SCRIPT, 0, P, "band", "n2", "bob", "C", "/x", b"") == 3
    assert store.hgetall(keys.state("band")) == {b"/doc": b"1:" + message}
    records = [pubsub.get_message(timeout=1) for _ in range(3)]
    assert [r["data"] for r in records if r is not None] == [
        b"\x1f".join([b"S", b"1", b"band", b"n1", b"ana", message]),
        b"\x1f".join([b"S", b"2", b"band", b"n1", b"ana", b"X"]),
        b"\x1f".join([b"C", b"3", b"band", b"n2", b"bob", b"/x"]),
    ]
    pubsub.close()
    assert store.eval(STATE_SCRIPT, 0, P, "nobody", "n1", "ana", "S", "/a", b"A") == 0


def test_an_ordinary_groups_tempo_and_state_go_with_its_last_user_a_pinned_ones_stay(
    store: redis.Redis,
) -> None:
    keys = Keys(P)
    for group, pinned in (("band", "0"), ("class", "1")):
        store.eval(JOIN_SCRIPT, 0, P, "n1", group, "ana", "G", "U", pinned, "0", "1", b"L")
        store.eval(STATE_SCRIPT, 0, P, group, "n1", "ana", "S", "/a", b"A")
        store.eval(LEAVE_SCRIPT, 0, P, "n1", group, "ana")
    assert not store.exists(keys.ensemble("band"), keys.state("band"))
    assert store.exists(keys.ensemble("class"), keys.state("class")) == 2


def test_a_node_back_writes_its_copy_where_the_store_has_none(store: redis.Redis) -> None:
    load(store, "n1", "band", "ana", b"STORE")
    store.eval(STATE_SCRIPT, 0, P, "band", "n1", "ana", "S", "/a", b"A")
    # The store has this group's tempo and state: they win over the node's copy.
    reply = store.eval(RESTORE_SCRIPT, 0, P, "band", b"MINE", "/b", b"B")
    assert reply == [b"ok", b"STORE", b"1", b"1", [b"/a", b"1:A"]]
    # The store lost its memory: the node's copy is written back, in its order.
    store.flushall()
    reply = store.eval(RESTORE_SCRIPT, 0, P, "band", b"MINE", "/b", b"B", "/c", b"C")
    assert reply[:4] == [b"ok", b"MINE", b"1", b"2"]
    assert sorted(reply[4]) == sorted([b"/b", b"1:B", b"/c", b"2:C"])
    assert store.hincrby(Keys(P).ensemble("band"), "seq", 1) == 3  # numbering goes on
