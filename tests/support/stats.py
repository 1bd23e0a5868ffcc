"""Percentiles, the way every report here computes them."""

from __future__ import annotations

__all__ = ["percentile", "summary_ms"]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank; 0.5 is the median)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def summary_ms(latencies_ms: list[float]) -> str:
    return (
        f"p50 {percentile(latencies_ms, 0.5):.2f} ms, p99 {percentile(latencies_ms, 0.99):.2f} ms, "
        f"max {max(latencies_ms, default=0.0):.2f} ms"
    )
