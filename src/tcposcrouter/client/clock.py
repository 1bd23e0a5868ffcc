"""How far the router's clock is from this machine's, estimated from time exchanges the way NTP
does (RFC 5905 §8: t0…t3, the offset and the round trip of each), then filtered for a path with
jitter (docs/protocol.md §9). Pure: the caller gives every time.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockSample"]

# Exchanges remembered: one refresh of the group clock (client/aio.py asks 48 at a time).
KEEP = 48
# The exchanges trusted: quicker than the median, and than 1.5 times the quickest plus 0.5 ms.
QUICK_FACTOR, QUICK_MARGIN = 1.5, 0.0005


@dataclass(frozen=True)
class ClockSample:
    offset: float  # how far the router's clock is ahead of ours, seconds
    round_trip: float  # the network's part of the exchange, seconds

    @classmethod
    def of(cls, t0: float, t1: float, t2: float, t3: float) -> ClockSample:
        """t0 sent (our clock), t1 received and t2 answered (the router's), t3 back (ours)."""
        return cls(((t1 - t0) + (t2 - t3)) / 2, (t3 - t0) - (t2 - t1))


class ClockEstimate:
    """The mean offset of the quick exchanges among the last `KEEP`. A delay on the way (a
    queue, a retransmission) lengthens one direction and skews that exchange's offset by up to
    half the delay, so the slow ones are left out, as NTP's filter leaves out all but the
    quickest. But on a path whose jitter is in both directions, the quickest exchange is still
    off by half the difference of its two directions' jitter, milliseconds over a long path; the
    quick exchanges' errors are independent, and their mean is several times steadier (40 ms of
    round trip, ±5 ms each way: two members' estimates 4.4 ms apart at p99 with the quickest of
    8, within 2 ms with the quick ones of 48; docs/performance.md)."""

    def __init__(self) -> None:
        self._samples: collections.deque[ClockSample] = collections.deque(maxlen=KEEP)

    def add(self, t0: float, t1: float, t2: float, t3: float) -> ClockSample:
        sample = ClockSample.of(t0, t1, t2, t3)
        self._samples.append(sample)
        return sample

    @property
    def samples(self) -> int:
        return len(self._samples)

    def _quick(self) -> list[ClockSample]:
        if not self._samples:
            raise ValueError("no time exchange yet")
        trips = sorted(s.round_trip for s in self._samples)
        median = trips[(len(trips) - 1) // 2]
        cut = min(median, trips[0] * QUICK_FACTOR + QUICK_MARGIN)
        return [s for s in self._samples if s.round_trip <= cut]

    @property
    def offset(self) -> float:
        """Seconds to add to this machine's time to get the router's (group) time."""
        quick = self._quick()
        return sum(s.offset for s in quick) / len(quick)

    @property
    def round_trip(self) -> float:
        """The quickest exchange's round trip: the path's own."""
        return min(s.round_trip for s in self._quick())

    def to_group(self, local: float) -> float:
        return local + self.offset

    def to_local(self, group: float) -> float:
        return group - self.offset
