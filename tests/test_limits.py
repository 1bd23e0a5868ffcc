"""Token buckets and the failed-login throttle, with a clock the test moves."""

from __future__ import annotations

from tcposcrouter.limits import Limits, LoginThrottle, TokenBucket


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


def test_byte_burst_always_holds_one_largest_packet() -> None:
    limits = Limits(rate_limit_bytes=1000, max_packet_size=1 << 20)
    assert limits.byte_burst() >= 1 << 20


def test_login_throttle_waits_grow_and_are_per_address() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60)
    for i in range(4):
        throttle.failed("203.0.113.5", now=float(i))
        assert throttle.wait_needed("203.0.113.5", now=float(i)) == 0
    throttle.failed("203.0.113.5", now=10.0)
    assert throttle.wait_needed("203.0.113.5", now=10.0) == 1.0
    assert throttle.wait_needed("203.0.113.5", now=11.0) == 0
    throttle.failed("203.0.113.5", now=11.0)
    assert throttle.wait_needed("203.0.113.5", now=11.0) == 2.0
    for _ in range(20):
        throttle.failed("203.0.113.5", now=12.0)
    assert throttle.wait_needed("203.0.113.5", now=12.0) == 60.0  # capped
    assert throttle.wait_needed("198.51.100.7", now=12.0) == 0


def test_login_throttle_forgets_quiet_addresses_and_stays_bounded() -> None:
    throttle = LoginThrottle(allowed=1, max_delay=60)
    throttle.failed("203.0.113.5", now=0.0)
    assert throttle.wait_needed("203.0.113.5", now=0.5) > 0
    assert throttle.wait_needed("203.0.113.5", now=700.0) == 0
    assert len(throttle) == 0
    for i in range(60_000):
        throttle.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", now=1.0)
    assert len(throttle) == 50_000
