"""The group's clock on this machine (client/group_clock.py): beat and time through the offset,
a change told ahead of its beat kept until then, and the next bar."""

from __future__ import annotations

import pytest

from tcposcrouter.client.clock import ClockEstimate
from tcposcrouter.client.group_clock import GroupClock
from tcposcrouter.client.protocol import TempoLine

T = 1_800_000_000.0


def clock_ahead_by(offset: float) -> GroupClock:
    """A group clock whose router is `offset` seconds ahead of this machine."""
    estimate = ClockEstimate()
    estimate.add(T, T + offset + 0.01, T + offset + 0.01, T + 0.02)  # a 20 ms round trip
    return GroupClock(estimate)


def test_the_beat_reads_the_routers_time_through_the_offset() -> None:
    clock = clock_ahead_by(2.0)
    clock.told(TempoLine(T, 0.0, 120.0, 4, 1))
    assert clock.beat_at(T - 2.0) == pytest.approx(0.0)  # our T-2 is the router's T
    assert clock.beat_at(T) == pytest.approx(4.0)
    assert clock.time_of(8.0) == pytest.approx(T + 2.0)
    assert clock.bar_start_after(T - 1.0) == 4.0  # at beat 2: the next bar is beat 4
    assert clock.bar_start_after(T) == 8.0  # at beat 4 exactly: the one after


def test_a_change_told_ahead_keeps_the_old_line_until_its_moment() -> None:
    clock = clock_ahead_by(0.0)
    clock.told(TempoLine(T, 0.0, 120.0, 4, 1))
    clock.told(TempoLine(T + 4.0, 8.0, 60.0, 4, 1))  # at beat 8, half the tempo
    assert clock.beat_at(T + 3.0) == pytest.approx(6.0)  # still 120 bpm
    assert clock.beat_at(T + 6.0) == pytest.approx(10.0)  # 60 bpm from beat 8
    assert clock.time_of(6.0) == pytest.approx(T + 3.0)
    assert clock.time_of(10.0) == pytest.approx(T + 6.0)
    clock.told(TempoLine(T + 2.0, 4.0, 90.0, 4, 1))  # replaces the pending change
    assert clock.beat_at(T + 6.0) == pytest.approx(10.0)  # 4 + 4 s at 1.5 beats/s
    assert clock.line_at(T + 100).bpm == 90.0


def test_before_any_tempo_there_is_no_beat_and_before_any_exchange_no_offset() -> None:
    clock = GroupClock(ClockEstimate())
    with pytest.raises(LookupError):
        clock.beat_at(T)
    clock.told(TempoLine(T, 0.0, 60.0, 4, 1))
    assert clock.beat_at(T + 1.0) == pytest.approx(1.0)
