"""A group's tempo (docs/protocol.md §11): its timeline — at router time `t0` the group is at beat
`beat0`, moving at `bpm`, in bars of `quantum` beats, its transport `playing` or not — the one
change that may be pending, and the `/oscrouter/tempo…` requests of its members.

A change is built on the line in force at the beat it names, so the beat is continuous: the new
line passes through the old one there. Every member, the one who asked included, is sent the
new line at once, with the change point as its `t0`; a client keeps the old line until then.
At most one change waits: a new set or play replaces it. The timeline is made when the group's
first member registers, at beat 0, 120 bpm, bars of 4, playing.

Times are the router's clock (the hub's `now`); the messages carry them as wall-clock time tags
(the time service's clock, docs/protocol.md §9).

Pure code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from ..errors import ErrorCode, RemoteError
from ..osc.messages import message_address
from ..osc.tempo import (
    TEMPO,
    TEMPO_PLAY,
    TEMPO_SET,
    bad_tempo,
    read_tempo_ask,
    read_tempo_play,
    read_tempo_set,
    tempo_message,
)

if TYPE_CHECKING:
    from .outbox import Mailbox, Outbox
    from .settings import Settings

__all__ = [
    "DEFAULT_BPM",
    "MAX_BPM",
    "MIN_BPM",
    "Group",
    "GroupTempo",
    "Line",
    "Timeline",
    "tell_tempo",
]

DEFAULT_BPM, DEFAULT_QUANTUM = 120.0, 4
MIN_BPM, MAX_BPM = 20.0, 999.0
# A beat named this close to the beat of the moment (in beats) is the moment itself.
_NOW_BEATS = 1e-9


@dataclass(frozen=True)
class Line:
    """From router time `t0` on, the group is at beat `beat0 + (t - t0) * bpm / 60`.
    `wall_offset` is the wall clock's offset from the router's when the line was made: its
    `t0` is always told as the same time tag, however often it is sent."""

    t0: float
    beat0: float
    bpm: float
    quantum: int
    playing: int
    wall_offset: float = 0.0

    @property
    def wall_t0(self) -> float:
        return self.t0 + self.wall_offset

    def beat_at(self, t: float) -> float:
        return self.beat0 + (t - self.t0) * self.bpm / 60.0

    def time_at(self, beat: float) -> float:
        return self.t0 + (beat - self.beat0) * 60.0 / self.bpm


class Group(Protocol):
    """What the tempo needs of a group (core/directory.py's `Group`)."""

    timeline: Timeline | None

    def mailboxes(self) -> list[Mailbox]: ...


class Timeline:
    """A group's line in force and the change that may be pending."""

    __slots__ = ("_line", "_pending")

    def __init__(self, now: float, wall_offset: float = 0.0) -> None:
        self._line = Line(now, 0.0, DEFAULT_BPM, DEFAULT_QUANTUM, 1, wall_offset)
        self._pending: Line | None = None

    def lines(self, now: float) -> list[Line]:
        """The line in force at `now`, then the pending change, if any."""
        pending = self._pending
        if pending is not None and pending.t0 <= now:
            self._line, self._pending = pending, None
            pending = None
        return [self._line] if pending is None else [self._line, pending]

    def set_tempo(
        self,
        now: float,
        bpm: float,
        at_beat: float | None,
        quantum: int | None,
        wall_offset: float = 0.0,
    ) -> Line:
        """Change to `bpm` (and bars of `quantum`) at `at_beat` (None, or a beat already past:
        now); return the new line. Raise `bad_tempo` for what the contract refuses."""
        if not (math.isfinite(bpm) and MIN_BPM <= bpm <= MAX_BPM):
            raise bad_tempo(f"bpm must be between {MIN_BPM:g} and {MAX_BPM:g}, not {bpm:g}")
        line = self.lines(now)[0]
        if quantum is not None and quantum < 1:
            raise bad_tempo(f"Q must be at least 1, not {quantum}")
        if quantum is not None and quantum != line.quantum:
            beat_now = line.beat_at(now)
            if at_beat is None or at_beat <= beat_now or at_beat % quantum:
                raise bad_tempo(
                    f"a change of Q to {quantum} must name a future beat that is a multiple of "
                    f"{quantum} (the beat now is {beat_now:.3f})"
                )
        return self._change(
            now, line, at_beat, wall_offset, bpm=bpm, quantum=quantum or line.quantum
        )

    def set_playing(
        self, now: float, playing: int, at_beat: float | None, wall_offset: float = 0.0
    ) -> Line:
        """Start (1) or stop (0) the shared transport at `at_beat` (None or past: now)."""
        line = self.lines(now)[0]
        return self._change(now, line, at_beat, wall_offset, playing=playing)

    def _change(
        self,
        now: float,
        line: Line,
        at_beat: float | None,
        wall_offset: float,
        *,
        bpm: float | None = None,
        quantum: int | None = None,
        playing: int | None = None,
    ) -> Line:
        beat_now = line.beat_at(now)
        if at_beat is None or at_beat <= beat_now + _NOW_BEATS:
            t0, beat0 = now, beat_now
        else:
            t0, beat0 = line.time_at(at_beat), at_beat
        new = replace(
            line,
            t0=t0,
            beat0=beat0,
            bpm=line.bpm if bpm is None else bpm,
            quantum=line.quantum if quantum is None else quantum,
            playing=line.playing if playing is None else playing,
            wall_offset=wall_offset,
        )
        if t0 <= now:
            self._line, self._pending = new, None
        else:
            self._pending = new
        return new


def timeline_of(group: Group, now: float, wall_offset: float) -> Timeline:
    """The group's timeline, made at `now` when it has none yet (its first member registers)."""
    timeline = group.timeline
    if timeline is None:
        timeline = group.timeline = Timeline(now, wall_offset)
    return timeline


def tell_tempo(
    outbox: Outbox, settings: Settings, group: Group, now: float, boxes: list[Mailbox]
) -> None:
    """Send `boxes` the group's line in force, then its pending change if there is one."""
    for line in timeline_of(group, now, settings.wall_clock_offset).lines(now):
        outbox.deliver(boxes, _message(line))


def _message(line: Line) -> bytes:
    return tempo_message(line.wall_t0, line.beat0, line.bpm, line.quantum, line.playing)


class GroupTempo:
    """A member's `/oscrouter/tempo`, `/oscrouter/tempo/set` and `/oscrouter/tempo/play`."""

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        self._settings = settings
        self._outbox = outbox

    def handle(self, group: Group, mailbox: Mailbox, message: bytes, now: float) -> None:
        """Answer or carry out one tempo request of a member of `group` (whose mailbox is
        `mailbox`); raise `bad_tempo` for one the contract refuses."""
        address = message_address(message)
        if address == TEMPO:
            read_tempo_ask(message)
            tell_tempo(self._outbox, self._settings, group, now, [mailbox])
            return
        offset = self._settings.wall_clock_offset
        timeline = timeline_of(group, now, offset)
        if address == TEMPO_SET:
            request = read_tempo_set(message)
            line = timeline.set_tempo(now, request.bpm, request.at_beat, request.quantum, offset)
        elif address == TEMPO_PLAY:
            play = read_tempo_play(message)
            line = timeline.set_playing(now, play.playing, play.at_beat, offset)
        else:
            raise RemoteError(ErrorCode.UNKNOWN_COMMAND, f"{address} is reserved for the router")
        self._outbox.deliver(group.mailboxes(), _message(line))
