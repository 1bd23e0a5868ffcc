"""The store's keys and Lua scripts (cluster/store.py), run in a real redis-server: a join
creates or answers with the hash that exists, a leave removes the last trace of a user, a dead
node's users all leave."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support.redis import RedisServer
from tcposcrouter.cluster.store import DEAD_NODE_SCRIPT, JOIN_SCRIPT, LEAVE_SCRIPT, Keys

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
    answer: list[bytes] = store.eval(JOIN_SCRIPT, 0, P, node, group, user, gh, uh, "0", "0")
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
