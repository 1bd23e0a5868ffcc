"""The recording format: written, read back, and refused when it is not one."""

from __future__ import annotations

import json

import pytest

from support.osc import msg
from tcposcrouter.client.recording import BadRecording, Record, header, read_records, record_line


def test_records_round_trip_with_their_bytes() -> None:
    records = [
        Record(0.0, 100.0, msg("/a", 1)),
        Record(0.125, 100.125, bytes(range(256)) * 2),  # any bytes survive
        Record(0.2, 100.2, msg("/oscrouter/private", "bob", "/x"), private=True),
        Record(0.3, 100.3, users=["ana", "bob"]),
    ]
    lines = [header("band", "127.0.0.1:55555", 100.0)] + [record_line(r) for r in records]
    assert list(read_records(lines)) == records
    assert json.loads(lines[0])["tcposcrouter_recording"] == 1
    assert [r.replayable for r in records] == [True, True, False, False]


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["not json"],
        ['{"something": "else"}'],
        [header("g", "s", 0), '{"t": 1, "packet": "!!"}'],
    ],
)
def test_what_is_not_a_recording(lines: list[str]) -> None:
    with pytest.raises(BadRecording):
        list(read_records(lines))
