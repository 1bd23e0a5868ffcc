"""Where a local Ableton Link session stands against the group's timeline (docs/client-tools.md,
"Ableton Link across the internet"): the phase error, and whether the bridge must move Link.

The group is the authority for tempo, beat and bars (its `Q` is Link's quantum); a local Link
peer's tempo change or start/stop is passed to the group, which tells everyone, the bridge
too, and Link then follows the group like every other member. Pure: the caller reads both
clocks.
"""

from __future__ import annotations

__all__ = ["PHASE_TOLERANCE_MS", "TEMPO_TOLERANCE", "phase_error_ms", "tempo_differs"]

# How far Link's phase may stray from the group's before the bridge moves it back: well under
# what anyone hears (a few ms) and under the 2 ms two sessions must agree within, yet above
# the few tens of µs one reading of both clocks can be apart.
PHASE_TOLERANCE_MS = 0.5
# Tempos closer than this are the same (bpm): Link reports its tempo as a float.
TEMPO_TOLERANCE = 1e-3


def phase_error_ms(link_beat: float, group_beat: float, quantum: float, bpm: float) -> float:
    """How many ms Link is ahead of the group within the bar (negative: behind), for beats read
    at the same moment: the difference taken modulo the bar, into -Q/2 … Q/2."""
    difference = (link_beat - group_beat + quantum / 2) % quantum - quantum / 2
    return difference * 60_000.0 / bpm


def tempo_differs(one: float, other: float) -> bool:
    return abs(one - other) > TEMPO_TOLERANCE
