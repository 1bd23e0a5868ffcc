"""The client's clock estimate: NTP's arithmetic, delayed exchanges left out, the quick ones
averaged."""

from __future__ import annotations

import pytest

from tcposcrouter.client.clock import KEEP, ClockEstimate, ClockSample


def exchange(offset: float, out: float, back: float, at: float = 1000.0) -> tuple[float, ...]:
    """t0..t3 of an exchange with the router `offset` s ahead and `out`/`back` s each way."""
    t0 = at
    t1 = t0 + out + offset
    t2 = t1 + 0.00001
    t3 = t2 - offset + back
    return t0, t1, t2, t3


def test_a_symmetric_exchange_gives_the_offset_exactly() -> None:
    sample = ClockSample.of(*exchange(0.25, 0.002, 0.002))
    assert sample.offset == pytest.approx(0.25, abs=1e-9)
    assert sample.round_trip == pytest.approx(0.004, abs=1e-9)


def test_the_quickest_exchange_wins_over_delayed_ones() -> None:
    estimate = ClockEstimate()
    estimate.add(*exchange(-0.1, 0.050, 0.001))  # queued on the way out: offset off by 25 ms
    estimate.add(*exchange(-0.1, 0.001, 0.001))
    estimate.add(*exchange(-0.1, 0.001, 0.030))
    assert estimate.offset == pytest.approx(-0.1, abs=1e-6)
    assert estimate.round_trip == pytest.approx(0.002, abs=1e-6)
    assert estimate.to_group(10.0) == pytest.approx(9.9, abs=1e-6)
    assert estimate.to_local(9.9) == pytest.approx(10.0, abs=1e-6)


def test_only_the_last_exchanges_count() -> None:
    estimate = ClockEstimate()
    estimate.add(*exchange(5.0, 0.0001, 0.0001))  # quick, but the clock has moved since
    for _ in range(KEEP):
        estimate.add(*exchange(0.0, 0.001, 0.001))
    assert estimate.samples == KEEP
    assert estimate.offset == pytest.approx(0.0, abs=1e-6)


def test_no_exchange_no_estimate() -> None:
    with pytest.raises(ValueError):
        _ = ClockEstimate().offset


def test_jitter_both_ways_is_averaged_out_over_the_quick_exchanges() -> None:
    estimate = ClockEstimate()
    # A 40 ms path whose two directions each vary by ±5 ms: every exchange's own offset is off
    # by half the difference, here up to 4 ms either way.
    for out, back in [(0.015, 0.023), (0.023, 0.015), (0.017, 0.021), (0.021, 0.017)] * 6:
        estimate.add(*exchange(0.3, out, back))
    estimate.add(*exchange(0.3, 0.020, 0.400))  # a retransmission: left out
    assert estimate.offset == pytest.approx(0.3, abs=1e-6)
    assert estimate.round_trip == pytest.approx(0.038, abs=1e-4)
