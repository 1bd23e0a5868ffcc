"""Token buckets and rate budgets, with a clock the test moves."""

from __future__ import annotations

from tcposcrouter.core.rates import RateBudget, TokenBucket
from tcposcrouter.limits import Limits


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert all(bucket.take(1, 0.0) for _ in range(20))
    assert not bucket.take(1, 0.0)
    assert bucket.take(1, 0.1)  # 0.1 s at 10/s: one more token
    assert not bucket.take(1, 0.1)
    assert all(bucket.take(1, 10.0) for _ in range(20))  # refilled, but never past the burst
    assert not bucket.take(1, 10.0)


def test_token_bucket_refuses_more_than_the_burst_at_once() -> None:
    bucket = TokenBucket(rate=100, burst=50, now=0.0)
    assert not bucket.take(51, 100.0)
    assert bucket.take(50, 100.0)


def test_a_bucket_that_waited_never_gives_more_than_one_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(1, 0.0)  # the refill clock moves on every take, not only when dry
    assert all(bucket.take(1, 100.0) for _ in range(20))
    assert not bucket.take(1, 100.0)


def test_rate_budget_checks_packets_and_bytes() -> None:
    limits = Limits(rate_limit_packets=2, rate_limit_bytes=0)
    budget = RateBudget(limits, now=0.0)
    assert [budget.allows(10, 0.0) for _ in range(5)] == [True] * 4 + [False]
    by_bytes = RateBudget(
        Limits(rate_limit_packets=0, rate_limit_bytes=100, max_packet_size=150), 0.0
    )
    assert by_bytes.allows(150, 0.0) and by_bytes.allows(50, 0.0) and not by_bytes.allows(1, 0.0)
    assert not RateBudget.needed(Limits(rate_limit_packets=0, rate_limit_bytes=0))
