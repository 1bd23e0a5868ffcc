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

In a cluster (docs/cluster.md) the store holds each group's timeline, numbered by its changes:
a member's set or play is handed to the `SharedTempo` the cluster gives, which makes the change
there, atomically, on the store's timeline; every node (this one too) then adopts the new lines
and tells its members (`adopt_lines`). A node's copy of a timeline is a `Timeline` like any
other, with the store's number of the change it holds as its `version`.

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
    TEMPO_RELATIVE,
    TEMPO_SET,
    PlayRequest,
    TempoRequest,
    bad_tempo,
    read_tempo_ask,
    read_tempo_play,
    read_tempo_relative,
    read_tempo_set,
    relative_tempo_message,
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
    "SharedTempo",
    "TempoChange",
    "Timeline",
    "adopt_lines",
    "apply_change",
    "read_change",
    "tell_tempo",
]

# What a member asks to change: a set (bpm, atBeat, Q) or a play (playing, atBeat).
TempoChange = TempoRequest | PlayRequest

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

    def on_wall_clock(self) -> Line:
        """The same line with its `t0` on the wall clock (as the cluster's store keeps it)."""
        return replace(self, t0=self.wall_t0, wall_offset=0.0)

    def on_router_clock(self, wall_offset: float) -> Line:
        """A line kept on the wall clock, on this router's clock (`wall_offset`: the wall
        clock's offset from it)."""
        return replace(self, t0=self.t0 - wall_offset, wall_offset=wall_offset)


class Group(Protocol):
    """What the tempo needs of a group (core/directory.py's `Group`)."""

    name: str
    timeline: Timeline | None

    def mailboxes(self) -> list[Mailbox]: ...


class Timeline:
    """A group's line in force and the change that may be pending; in a cluster, `version` is
    the store's number of the change this copy holds (0 for a timeline of this router alone)."""

    __slots__ = ("_line", "_pending", "version")

    def __init__(self, now: float, wall_offset: float = 0.0) -> None:
        self._line = Line(now, 0.0, DEFAULT_BPM, DEFAULT_QUANTUM, 1, wall_offset)
        self._pending: Line | None = None
        self.version = 0

    @classmethod
    def of_lines(cls, lines: list[Line], version: int) -> Timeline:
        """The timeline whose line in force is `lines[0]` and pending change `lines[1]`, if
        any (as `lines` returns them)."""
        timeline = cls(lines[0].t0)
        timeline._line = lines[0]
        timeline._pending = lines[1] if len(lines) > 1 else None
        timeline.version = version
        return timeline

    def copy(self) -> Timeline:
        lines = [self._line] if self._pending is None else [self._line, self._pending]
        return Timeline.of_lines(lines, self.version)

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


def apply_change(timeline: Timeline, change: TempoChange, now: float, wall_offset: float) -> Line:
    """Make the change a member asked for on `timeline`; return the new line."""
    if isinstance(change, TempoRequest):
        return timeline.set_tempo(now, change.bpm, change.at_beat, change.quantum, wall_offset)
    return timeline.set_playing(now, change.playing, change.at_beat, wall_offset)


def read_change(message: bytes) -> TempoChange:
    """The change a `/oscrouter/tempo/set` or `/oscrouter/tempo/play` asks for."""
    address = message_address(message)
    if address == TEMPO_SET:
        return read_tempo_set(message)
    if address == TEMPO_PLAY:
        return read_tempo_play(message)
    raise RemoteError(ErrorCode.UNKNOWN_COMMAND, f"{address} is reserved for the router")


class SharedTempo(Protocol):
    """Where a cluster node makes its members' tempo changes (cluster/ensemble.py)."""

    def change(self, group: str, change: TempoChange, asker: Mailbox) -> bool:
        """Make `change` on the store's timeline of `group`; False when it cannot now (the
        store is away): the change is then made here alone."""
        ...


def adopt_lines(outbox: Outbox, group: Group, lines: list[Line], version: int, now: float) -> bool:
    """The store's timeline of `group` changed to `lines` (on this router's clock), its change
    number `version`: a copy that holds an older one adopts it and tells the group's members
    the new line (the last of `lines`). False when the copy had it, or holds none (no member
    has joined here since the group was made)."""
    timeline = group.timeline
    if timeline is None or version <= timeline.version:
        return False
    group.timeline = Timeline.of_lines(lines, version)
    _tell(outbox, group.mailboxes(), lines[-1], now)
    return True


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
        _tell(outbox, boxes, line, now)


def _tell(outbox: Outbox, boxes: list[Mailbox], line: Line, now: float) -> None:
    """`line` to `boxes`: as `/oscrouter/tempo ,tddii`, or relative to `now` for those that
    asked for it (`/oscrouter/tempo/relative`)."""
    relative = [box for box in boxes if box.tempo_relative]
    if relative:
        boxes = [box for box in boxes if not box.tempo_relative]
        if line.t0 <= now:
            told = relative_tempo_message(
                line.beat_at(now), line.bpm, line.quantum, line.playing, 0.0
            )
        else:
            told = relative_tempo_message(
                line.beat0, line.bpm, line.quantum, line.playing, line.t0 - now
            )
        outbox.deliver(relative, told)
    if boxes:
        outbox.deliver(boxes, _message(line))


def _message(line: Line) -> bytes:
    return tempo_message(line.wall_t0, line.beat0, line.bpm, line.quantum, line.playing)


class GroupTempo:
    """A member's `/oscrouter/tempo`, `/oscrouter/tempo/set` and `/oscrouter/tempo/play`."""

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        self._settings = settings
        self._outbox = outbox

    def handle(
        self,
        group: Group,
        mailbox: Mailbox,
        message: bytes,
        now: float,
        shared: SharedTempo | None = None,
    ) -> None:
        """Answer or carry out one tempo request of a member of `group` (whose mailbox is
        `mailbox`); raise `bad_tempo` for one the contract refuses. In a cluster, `shared`
        makes the change in the store, after it is checked here against this node's copy."""
        address = message_address(message)
        if address == TEMPO:
            read_tempo_ask(message)
            tell_tempo(self._outbox, self._settings, group, now, [mailbox])
            return
        if address == TEMPO_RELATIVE:  # from now on told relative (or as time tags again)
            mailbox.tempo_relative = read_tempo_relative(message)
            tell_tempo(self._outbox, self._settings, group, now, [mailbox])
            return
        change = read_change(message)
        offset = self._settings.wall_clock_offset
        timeline = timeline_of(group, now, offset)
        if shared is not None:
            apply_change(timeline.copy(), change, now, offset)  # refused here, at once
            if shared.change(group.name, change, mailbox):
                return
        line = apply_change(timeline, change, now, offset)
        _tell(self._outbox, group.mailboxes(), line, now)
