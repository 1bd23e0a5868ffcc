"""A node's copy of a group's tempo and state from the store's snapshot, brought up to date with
the records published while it was loaded (cluster/ensemble.py's pure part)."""

from __future__ import annotations

import pytest

from support.osc import msg
from tcposcrouter.cluster.ensemble import copy_of, stored_change
from tcposcrouter.cluster.wire import EnsembleRecord, encode_lines
from tcposcrouter.core.state import StoredChange
from tcposcrouter.core.tempo import Line

WALL = 1_800_000_000.0
LINE = Line(WALL, 0.0, 120.0, 4, 1)


def record(kind: str, number: int, payload: bytes) -> EnsembleRecord:
    return EnsembleRecord(kind, number, "band", "n2", "zoe", payload)


def test_a_snapshot_on_this_routers_clock_with_the_records_since() -> None:
    faster = Line(WALL + 2, 4.0, 140.0, 4, 1)
    snapshot = [
        b"ok",
        encode_lines([LINE]),
        b"3",
        b"7",
        [b"/b", b"7:" + msg("/b", 2), b"/a", b"5:" + msg("/a", 1)],
    ]
    records = [
        record("S", 6, msg("/a", 0)),  # in the snapshot already: skipped
        record("T", 3, encode_lines([faster])),  # so is this one
        record("S", 8, msg("/a", 9)),
        record("C", 9, b"/b"),
        record("T", 4, encode_lines([LINE, faster])),
    ]
    offset = 1_799_999_000.0  # the wall clock's offset from this router's
    timeline, state = copy_of(snapshot, offset, records)
    assert timeline.version == 4
    in_force, pending = timeline.lines(0.0)
    assert in_force.t0 == LINE.t0 - offset and in_force.wall_t0 == LINE.t0
    assert pending.wall_t0 == faster.t0 and pending.bpm == 140.0
    assert state.seq == 9 and list(state.messages.items()) == [("/a", msg("/a", 9))]
    assert state.size == len(msg("/a", 9))


def test_a_snapshot_keeps_the_order_the_messages_were_last_set() -> None:
    pairs = [b"/late", b"12:" + msg("/late"), b"/early", b"2:" + msg("/early", "x")]
    _, state = copy_of([b"ok", encode_lines([LINE]), b"1", b"12", pairs], 0.0)
    assert list(state.messages) == ["/early", "/late"]


def test_what_no_script_returns_is_refused() -> None:
    with pytest.raises(ValueError):
        copy_of([b"ok", b"", b"1", b"0", []], 0.0)  # no timeline
    with pytest.raises(ValueError):
        copy_of([b"ok", encode_lines([LINE]), 1, b"0", []], 0.0)


def test_a_state_record_is_the_change_it_carries() -> None:
    assert stored_change(record("S", 3, msg("/x", 1))) == StoredChange(3, "/x", msg("/x", 1))
    assert stored_change(record("C", 4, b"/x")) == StoredChange(4, "/x", None)
