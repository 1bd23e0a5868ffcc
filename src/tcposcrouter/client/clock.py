"""How far the router's clock is from this machine's, estimated the way NTP does (RFC 5905 §8),
from time exchanges (docs/protocol.md §9). Pure: the caller gives every time.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

__all__ = ["ClockEstimate", "ClockSample"]

# Exchanges remembered: NTP's clock filter keeps eight.
KEEP = 8


@dataclass(frozen=True)
class ClockSample:
    offset: float  # how far the router's clock is ahead of ours, seconds
    round_trip: float  # the network's part of the exchange, seconds

    @classmethod
    def of(cls, t0: float, t1: float, t2: float, t3: float) -> ClockSample:
        """t0 sent (our clock), t1 received and t2 answered (the router's), t3 back (ours)."""
        return cls(((t1 - t0) + (t2 - t3)) / 2, (t3 - t0) - (t2 - t1))


class ClockEstimate:
    """The offset from the exchange with the lowest round trip among the last `KEEP`: a delay
    on the way (a queue, a retransmission) lengthens one direction and skews that sample's
    offset by up to half the delay, so the quickest exchange is the truest."""

    def __init__(self) -> None:
        self._samples: collections.deque[ClockSample] = collections.deque(maxlen=KEEP)

    def add(self, t0: float, t1: float, t2: float, t3: float) -> ClockSample:
        sample = ClockSample.of(t0, t1, t2, t3)
        self._samples.append(sample)
        return sample

    @property
    def samples(self) -> int:
        return len(self._samples)

    def _best(self) -> ClockSample:
        if not self._samples:
            raise ValueError("no time exchange yet")
        return min(self._samples, key=lambda s: s.round_trip)

    @property
    def offset(self) -> float:
        """Seconds to add to this machine's time to get the router's (group) time."""
        return self._best().offset

    @property
    def round_trip(self) -> float:
        return self._best().round_trip

    def to_group(self, local: float) -> float:
        return local + self.offset

    def to_local(self, group: float) -> float:
        return group - self.offset
