"""The WebSocket frame-header guard (server/http/frame_guard.py), fed bytes as a client sends
them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from support.wsraw import client_frame
from tcposcrouter.server.http.frame_guard import (
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    MAX_FRAMES_PER_MESSAGE,
    PING_BURST,
    FrameGuard,
)

LIMIT = 4096


def test_whole_messages_pass() -> None:
    guard = FrameGuard(LIMIT)
    stream = client_frame(b"a" * 10) + client_frame(b"b" * 300) + client_frame(b"c" * LIMIT)
    assert guard.feed(stream, 0.0) is None


@given(st.lists(st.integers(1, 200), min_size=1, max_size=30), st.integers(1, 50))
def test_any_split_into_reads_reads_the_same(sizes: list[int], cut: int) -> None:
    stream = b"".join(client_frame(bytes(n)) for n in sizes) + client_frame(b"x", masked=False)
    guard = FrameGuard(LIMIT)
    refusal = None
    for at in range(0, len(stream), cut):
        refusal = guard.feed(stream[at : at + cut], 0.0)
        if refusal is not None:
            good = at + guard.refused_at
            break
    assert refusal is not None and refusal.code == CLOSE_PROTOCOL_ERROR
    # Everything before the bad frame is let through, and of the bad frame at most the part
    # that came in earlier reads.
    bad_starts = len(stream) - len(client_frame(b"x", masked=False))
    assert good == max(at, bad_starts)


def test_refused_at_is_where_the_bad_frame_begins() -> None:
    good = client_frame(b"fine") + client_frame(b"also fine")
    guard = FrameGuard(LIMIT)
    refusal = guard.feed(good + client_frame(b"bad", reserved=1), 0.0)
    assert refusal is not None and "reserved" in refusal.reason
    assert guard.refused_at == len(good)


def test_an_unmasked_frame_is_refused_from_its_second_byte() -> None:
    guard = FrameGuard(LIMIT)
    refusal = guard.feed(client_frame(b"x" * 300, masked=False)[:2], 0.0)
    assert refusal is not None and "unmasked" in refusal.reason


def test_fragments_up_to_the_cap_then_refused() -> None:
    pieces = client_frame(b"a", final=False) + b"".join(
        client_frame(b"a", opcode=0, final=False) for _ in range(MAX_FRAMES_PER_MESSAGE - 2)
    )
    guard = FrameGuard(LIMIT)
    assert guard.feed(pieces + client_frame(b"z", opcode=0), 0.0) is None  # exactly the cap
    guard = FrameGuard(LIMIT)
    refusal = guard.feed(pieces + client_frame(b"a", opcode=0, final=False) * 2, 0.0)
    assert refusal is not None and refusal.code == CLOSE_POLICY


def test_a_message_over_the_limit_in_pieces_is_too_big() -> None:
    guard = FrameGuard(LIMIT)
    half = bytes(LIMIT // 2)
    stream = client_frame(half, final=False) + client_frame(half, opcode=0, final=False)
    assert guard.feed(stream, 0.0) is None
    refusal = guard.feed(client_frame(b"!", opcode=0), 0.0)
    assert refusal is not None and refusal.code == CLOSE_TOO_BIG


def test_pings_are_a_token_bucket() -> None:
    guard = FrameGuard(LIMIT)
    ping = client_frame(b"p", opcode=9)
    for _ in range(int(PING_BURST)):
        assert guard.feed(ping, 0.0) is None
    refusal = guard.feed(ping, 0.0)
    assert refusal is not None and refusal.code == CLOSE_POLICY
    calm = FrameGuard(LIMIT)
    for n in range(200):  # one every half second, for 100 s
        assert calm.feed(ping, n * 0.5) is None


def test_a_64_bit_length_with_the_top_bit_set() -> None:
    frame = client_frame(b"", declared=1 << 63)
    refusal = FrameGuard(LIMIT).feed(frame, 0.0)
    assert refusal is not None and refusal.code == CLOSE_PROTOCOL_ERROR


@st.composite
def legal_streams(draw: st.DrawFn) -> bytes:
    """What a well-behaved client may send: messages in one frame or a few, with the odd
    ping or pong between their frames, all within the limits."""
    stream = b""
    for _ in range(draw(st.integers(1, 8))):
        size = draw(st.integers(0, LIMIT))
        payload = bytes(size)
        pieces = draw(st.integers(1, 6))
        cuts = sorted(
            draw(st.lists(st.integers(0, size), min_size=pieces - 1, max_size=pieces - 1))
        )
        parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
        for index, part in enumerate(parts):
            opcode = draw(st.sampled_from([1, 2])) if index == 0 else 0
            stream += client_frame(part, opcode, final=index == len(parts) - 1)
            if index == 0 and draw(st.booleans()):  # a ping a message at most: within the burst
                stream += client_frame(b"k", draw(st.sampled_from([9, 10])))
    return stream


@given(legal_streams(), st.integers(1, 4096))
def test_nothing_a_well_behaved_client_sends_is_refused(stream: bytes, cut: int) -> None:
    guard = FrameGuard(LIMIT)
    for at in range(0, len(stream), cut):
        assert guard.feed(stream[at : at + cut], 0.0) is None
