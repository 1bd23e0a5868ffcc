"""The limits' own rules (the defaults and their reasons are in limits.py)."""

from __future__ import annotations

from tcposcrouter.limits import Limits


def test_byte_burst_always_holds_one_largest_packet() -> None:
    limits = Limits(rate_limit_bytes=1000, max_packet_size=1 << 20)
    assert limits.byte_burst() >= 1 << 20


def test_packet_burst_is_two_seconds_worth() -> None:
    assert Limits(rate_limit_packets=300).packet_burst() == 600
