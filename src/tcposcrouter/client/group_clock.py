"""The group's clock on this machine: the router's tempo lines (docs/protocol.md §11) read through
the time service's offset (client/clock.py), so that every member's program knows which beat
the group is at, now or at any moment, and when a beat comes.

The router tells a change ahead of its beat at once; the line in force stays in force until the
new one's `t0`. So the clock keeps the lines it was told in order of `t0` and reads each moment
with the last line begun by then.

Pure: the caller gives every time.
"""

from __future__ import annotations

import math

from .clock import ClockEstimate
from .protocol import TempoLine

__all__ = ["GroupClock"]


class GroupClock:
    """Beat ↔ time for one group. Times are this machine's (Unix seconds, like `time.time()`);
    before any time exchange the offset is taken as 0."""

    def __init__(self, estimate: ClockEstimate) -> None:
        self.estimate = estimate
        self._lines: list[TempoLine] = []  # by t0; the first is the one in force longest

    def told(self, line: TempoLine) -> None:
        """A tempo the router sent: in force from its `t0`. A line told later replaces what
        was told for the same moment or after (at most one change is pending)."""
        kept = [old for old in self._lines if old.t0 < line.t0]
        self._lines = [*kept[-1:], line]

    @property
    def known(self) -> bool:
        return bool(self._lines)

    def _offset(self) -> float:
        return self.estimate.offset if self.estimate.samples else 0.0

    def router_time(self, local: float) -> float:
        return local + self._offset()

    def local_time(self, router: float) -> float:
        return router - self._offset()

    def line_at(self, local: float) -> TempoLine:
        """The line in force at `local`."""
        if not self._lines:
            raise LookupError("the router has not told the tempo yet")
        moment = self.router_time(local)
        current = self._lines[0]
        for line in self._lines[1:]:
            if line.t0 <= moment:
                current = line
        return current

    def beat_at(self, local: float) -> float:
        """The group's beat at `local`."""
        return self.line_at(local).beat_at(self.router_time(local))

    def time_of(self, beat: float) -> float:
        """When (this machine's time) the group reaches `beat`, by the lines told so far."""
        if not self._lines:
            raise LookupError("the router has not told the tempo yet")
        line = self._lines[0]
        for later in self._lines[1:]:
            if later.beat0 <= beat:
                line = later
        return self.local_time(line.t0 + (beat - line.beat0) * 60.0 / line.bpm)

    def bar_start_after(self, local: float) -> float:
        """The first beat of the next bar after `local` (in bars of the line then in force)."""
        line = self.line_at(local)
        beat = self.beat_at(local)
        return float(math.floor(beat / line.quantum + 1e-9) + 1) * line.quantum
