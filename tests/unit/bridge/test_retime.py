"""Moving bundle time tags between clocks, for bridge --retime."""

from __future__ import annotations

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.bridge.retime import shift_time_tags
from tcposcrouter.osc.messages import time_tag


def seconds(tag: bytes) -> float:
    return int.from_bytes(tag, "big") / 2**32


def test_every_time_tag_moves_and_nothing_else() -> None:
    inner = bundle(time_tag(1000.0), msg("/b", 2))
    packet = bundle(time_tag(1000.5), msg("/a", 1), inner, bundle(IMMEDIATELY, msg("/c")))
    moved = shift_time_tags(packet, -0.25)
    assert seconds(moved[8:16]) - seconds(packet[8:16]) == -0.25
    expected = bundle(
        time_tag(1000.25), msg("/a", 1), bundle(time_tag(999.75), msg("/b", 2)),
        bundle(IMMEDIATELY, msg("/c")),
    )  # fmt: skip
    assert moved == expected


def test_messages_immediately_and_broken_bundles_pass_unchanged() -> None:
    assert shift_time_tags(msg("/a", 1), 5.0) == msg("/a", 1)
    now = bundle(IMMEDIATELY, msg("/a"))
    assert shift_time_tags(now, 5.0) == now
    truncated = bundle(time_tag(10.0), msg("/a"))[:-4]
    assert shift_time_tags(truncated, 5.0) == truncated
