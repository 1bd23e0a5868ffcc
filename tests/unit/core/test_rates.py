"""Token buckets and rate budgets, with a clock the test moves."""

from __future__ import annotations

import pytest

from tcposcrouter.core.rates import RateBudget, TokenBucket
from tcposcrouter.errors import ErrorCode
from tcposcrouter.limits import Limits


def test_token_bucket_spends_the_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert [bucket.spend(1, 0.0) for _ in range(20)] == [0.0] * 20
    assert bucket.spend(5, 0.0) == pytest.approx(0.5)  # 5 in debt at 10/s
    assert bucket.spend(1, 0.5) == pytest.approx(0.1)  # the debt paid, one more spent
    assert bucket.spend(0, 0.61) == 0.0


def test_a_bucket_that_waited_never_gives_more_than_one_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.spend(1, 0.0) == 0.0  # the refill clock moves on every call
    assert bucket.spend(20, 100.0) == 0.0
    assert bucket.spend(1, 100.0) == pytest.approx(0.1)
    assert not bucket.full(100.0) and bucket.full(102.2)


def test_rate_budget_pauses_for_packets_and_for_bytes() -> None:
    by_packets = RateBudget(Limits(rate_limit_packets=2, rate_limit_bytes=0), now=0.0)
    assert by_packets.spend(4, 10_000_000, 0.0) == 0.0  # the burst: two seconds' worth
    assert by_packets.spend(2, 10, 0.0) == pytest.approx(1.0)
    by_bytes = RateBudget(
        Limits(rate_limit_packets=0, rate_limit_bytes=100, max_packet_size=150), 0.0
    )
    assert by_bytes.spend(1000, 200, 0.0) == 0.0
    assert by_bytes.spend(1, 50, 0.0) == pytest.approx(0.5)
    assert not RateBudget.needed(Limits(rate_limit_packets=0, rate_limit_bytes=0))


def test_an_episode_lasts_until_the_budget_is_full_again() -> None:
    budget = RateBudget(Limits(rate_limit_packets=10, rate_limit_bytes=0), now=0.0)
    assert not budget.episode_over(0.0)  # no episode yet
    budget.spend(25, 0, 0.0)
    budget.spend(5, 0, 0.5)
    assert budget.episode_pauses == 2 and budget.episode_seconds == pytest.approx(1.0)
    assert not budget.episode_over(1.0)  # still in debt
    assert not budget.episode_over(2.9)
    assert budget.episode_over(3.1)  # 5 owed at 0.5 s: 25 tokens to a full bucket at 10/s
    assert budget.episode_pauses == 0 and not budget.episode_over(10.0)


def test_the_notice_says_nothing_is_dropped_and_is_not_fatal() -> None:
    notice = RateBudget.notice(Limits())
    assert notice.code == ErrorCode.RATE_LIMITED and not notice.fatal
    assert "nothing is dropped" in notice.detail
