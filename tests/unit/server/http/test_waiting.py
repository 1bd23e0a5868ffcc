"""The HTTP port's pool of connections not yet a WebSocket (server/http/waiting.py)."""

from __future__ import annotations

from tcposcrouter.core.admission import PATIENCE_SECONDS
from tcposcrouter.server.http.waiting import MAX_HTTP_CONNECTIONS, WaitingPool, http_connection_cap


def test_per_address_the_oldest_gives_way_once_it_has_waited() -> None:
    pool: WaitingPool[int] = WaitingPool()
    for n in range(4):
        assert pool.admit(n, "10.0.0.1", 0.0, per_address=4, total=100) == []
    # A burst: nobody has waited long enough, everybody stays.
    assert pool.admit(4, "10.0.0.1", 0.5, per_address=4, total=100) == []
    assert pool.admit(5, "10.0.0.1", PATIENCE_SECONDS + 0.1, per_address=4, total=100) == [0]
    assert pool.from_address("10.0.0.1") == 5
    # Another address is not touched.
    assert pool.admit(6, "10.0.0.2", PATIENCE_SECONDS + 0.2, per_address=4, total=100) == []


def test_at_the_total_the_oldest_anywhere_gives_way() -> None:
    pool: WaitingPool[int] = WaitingPool()
    for n in range(3):
        pool.admit(n, f"10.0.0.{n}", 0.0, per_address=0, total=3)
    assert pool.admit(3, "10.0.0.9", 0.0, per_address=0, total=3) == [0]
    assert len(pool) == 3


def test_a_trusted_proxy_is_held_only_to_the_total() -> None:
    pool: WaitingPool[int] = WaitingPool()
    for n in range(10):
        assert pool.admit(n, None, float(n * 10), per_address=2, total=100) == []
    assert len(pool) == 10


def test_leaving_frees_the_place() -> None:
    pool: WaitingPool[int] = WaitingPool()
    pool.admit(1, "10.0.0.1", 0.0, per_address=1, total=2)
    pool.leave(1)
    pool.leave(1)  # twice is harmless: a WebSocket that then closes
    assert pool.admit(2, "10.0.0.1", 10.0, per_address=1, total=2) == []
    assert pool.from_address("10.0.0.1") == 1


def test_the_cap() -> None:
    assert http_connection_cap(0) == MAX_HTTP_CONNECTIONS
    assert http_connection_cap(40) == 40
    assert http_connection_cap(10_000) == MAX_HTTP_CONNECTIONS
