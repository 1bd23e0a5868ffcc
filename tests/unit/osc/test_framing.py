"""The stream framers, fed whole, byte by byte, at every split point, and with garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.osc.framing import (
    AutoDecoder,
    Framing,
    InvalidFrame,
    LengthPrefixDecoder,
    MessageDecoder,
    PacketDecoder,
    SlipDecoder,
    decoder_for,
    frame,
    frame_length_prefix,
    frame_slip,
)

PACKETS = [b"/a\x00\x00,i\x00\x00\x00\x00\x00\x01", b"/b\x00\x00,\x00\x00\x00", b"\xc0\xdb\xc0\xdb"]


def feed_all(decoder: PacketDecoder, chunks: list[bytes]) -> list[bytes | InvalidFrame]:
    out: list[bytes | InvalidFrame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def every_split(stream: bytes) -> list[list[bytes]]:
    return [[stream[:i], stream[i:]] for i in range(len(stream) + 1)]


class TestLengthPrefix:
    stream = b"".join(frame_length_prefix(p) for p in PACKETS)

    def test_whole(self) -> None:
        assert LengthPrefixDecoder().feed(self.stream) == PACKETS

    def test_byte_by_byte(self) -> None:
        chunks = [self.stream[i : i + 1] for i in range(len(self.stream))]
        assert feed_all(LengthPrefixDecoder(), chunks) == PACKETS

    def test_every_split_point(self) -> None:
        for chunks in every_split(self.stream):
            assert feed_all(LengthPrefixDecoder(), chunks) == PACKETS

    def test_partial_packet_is_held(self) -> None:
        decoder = LengthPrefixDecoder()
        assert decoder.feed(self.stream[:-1]) == PACKETS[:-1]
        assert decoder.buffered() == len(frame_length_prefix(PACKETS[-1])) - 1
        assert decoder.feed(self.stream[-1:]) == PACKETS[-1:]
        assert decoder.buffered() == 0

    @pytest.mark.parametrize("length", [0, -1, -(2**31)])
    def test_zero_and_negative_lengths_are_framing_errors(self, length: int) -> None:
        with pytest.raises(RemoteError) as info:
            LengthPrefixDecoder().feed(length.to_bytes(4, "big", signed=True) + b"xxxx")
        assert info.value.code == ErrorCode.FRAMING_ERROR
        assert info.value.fatal

    def test_too_large_is_refused_before_the_payload_arrives(self) -> None:
        decoder = LengthPrefixDecoder(max_packet_size=1024)
        with pytest.raises(RemoteError) as info:
            decoder.feed((1025).to_bytes(4, "big"))
        assert info.value.code == ErrorCode.PACKET_TOO_LARGE
        assert info.value.fatal
        assert decoder.buffered() == 0

    def test_exactly_the_limit_is_accepted(self) -> None:
        packet = b"/" + b"a" * 1019 + b"\x00" * 4
        assert LengthPrefixDecoder(max_packet_size=1024).feed(frame_length_prefix(packet)) == [
            packet
        ]


class TestSlip:
    def test_double_end_whole_and_split(self) -> None:
        stream = b"".join(frame_slip(p) for p in PACKETS)
        assert SlipDecoder().feed(stream) == PACKETS
        for chunks in every_split(stream):
            assert feed_all(SlipDecoder(), chunks) == PACKETS

    def test_single_end_between_packets(self) -> None:
        stream = (
            b"\xc0"
            + b"\xc0".join(
                p.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") for p in PACKETS
            )
            + b"\xc0"
        )
        assert SlipDecoder().feed(stream) == PACKETS

    def test_without_leading_end(self) -> None:
        assert SlipDecoder().feed(b"/a\x00\x00,\x00\x00\x00\xc0") == [b"/a\x00\x00,\x00\x00\x00"]

    def test_empty_frames_are_ignored(self) -> None:
        assert SlipDecoder().feed(b"\xc0\xc0\xc0\xc0") == []

    def test_escapes(self) -> None:
        assert frame_slip(b"\xc0\xdb") == b"\xc0\xdb\xdc\xdb\xdd\xc0"
        assert SlipDecoder().feed(b"\xc0\xdb\xdc\xdb\xdd\xc0") == [b"\xc0\xdb"]

    @pytest.mark.parametrize("bad", [b"\xdb\x01", b"ab\xdb", b"\xdb\xdb\xdc"])
    def test_invalid_escape_loses_only_that_frame(self, bad: bytes) -> None:
        out = SlipDecoder().feed(b"\xc0" + bad + b"\xc0\xc0/ok\x00\xc0")
        assert isinstance(out[0], InvalidFrame)
        assert out[1:] == [b"/ok\x00"]

    def test_frame_growing_past_the_limit_is_refused(self) -> None:
        decoder = SlipDecoder(max_packet_size=100)
        decoder.feed(b"\xc0" + b"a" * 150)
        with pytest.raises(RemoteError) as info:
            for _ in range(10):
                decoder.feed(b"a" * 10)
        assert info.value.code == ErrorCode.PACKET_TOO_LARGE
        assert decoder.buffered() <= 2 * 100 + 10

    def test_decoded_frame_past_the_limit_is_refused(self) -> None:
        with pytest.raises(RemoteError) as info:
            SlipDecoder(max_packet_size=100).feed(b"\xc0" + b"a" * 101 + b"\xc0")
        assert info.value.code == ErrorCode.PACKET_TOO_LARGE


class TestAutoDetection:
    def test_zero_first_byte_means_length_prefix(self) -> None:
        decoder = AutoDecoder()
        assert decoder.framing is None
        assert decoder.feed(frame_length_prefix(PACKETS[0])) == [PACKETS[0]]
        assert decoder.framing is Framing.LENGTH_PREFIX

    @pytest.mark.parametrize("first", [b"\xc0", b"/", b"#"])
    def test_anything_else_means_slip(self, first: bytes) -> None:
        decoder = AutoDecoder()
        stream = frame_slip(PACKETS[1])
        if first != b"\xc0":
            stream = stream[1:]
        assert decoder.feed(stream) == [PACKETS[1]]
        assert decoder.framing is Framing.SLIP

    def test_nothing_decided_on_empty_read(self) -> None:
        decoder = AutoDecoder()
        assert decoder.feed(b"") == []
        assert decoder.framing is None


packets = st.lists(st.binary(min_size=1, max_size=300), max_size=12)


@given(packets, st.data())
def test_length_prefix_round_trip_at_arbitrary_splits(ps: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame_length_prefix(p) for p in ps)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(AutoDecoder(), chunks) == ps


@given(packets, st.data())
def test_slip_round_trip_at_arbitrary_splits(ps: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame_slip(p) for p in ps)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(SlipDecoder(), chunks) == ps


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_garbage_never_raises_anything_but_the_documented_error(chunks: list[bytes]) -> None:
    for decoder in (LengthPrefixDecoder(512), SlipDecoder(512), AutoDecoder(512)):
        try:
            out = feed_all(decoder, chunks)
        except RemoteError as error:
            assert error.code in (ErrorCode.FRAMING_ERROR, ErrorCode.PACKET_TOO_LARGE)
            assert error.fatal
        else:
            for item in out:
                assert isinstance(item, InvalidFrame) or 0 < len(item) <= 512
        assert decoder.buffered() <= 2 * 512


# -- WebSocket: one message is one packet -------------------------------------------------------


def test_websocket_framing_adds_no_bytes_and_is_not_a_stream() -> None:
    for packet in PACKETS:
        assert frame(packet, Framing.WEBSOCKET) is packet
    assert not Framing.WEBSOCKET.is_stream
    assert Framing.LENGTH_PREFIX.is_stream and Framing.SLIP.is_stream


def test_websocket_message_is_one_packet_whatever_its_bytes() -> None:
    decoder = MessageDecoder(64)
    assert decoder.framing is Framing.WEBSOCKET
    # A SLIP END or a zero length inside a message means nothing: the message is the frame.
    assert decoder.feed(b"\xc0\x00\x00\x00") == [b"\xc0\x00\x00\x00"]
    assert decoder.feed(PACKETS[0]) == [PACKETS[0]]
    assert decoder.buffered() == 0


def test_websocket_message_over_the_limit_is_refused_and_empty_is_invalid() -> None:
    decoder = MessageDecoder(16)
    with pytest.raises(RemoteError) as info:
        decoder.feed(b"x" * 17)
    assert info.value.code == ErrorCode.PACKET_TOO_LARGE and info.value.fatal
    (empty,) = decoder.feed(b"")
    assert isinstance(empty, InvalidFrame)
    decoder.set_max_packet_size(32)
    assert decoder.feed(b"x" * 32) == [b"x" * 32]


@pytest.mark.parametrize("framing", [None, *Framing])
def test_decoder_for_each_framing(framing: Framing | None) -> None:
    decoder = decoder_for(framing, 1024)
    assert decoder.framing is framing
    packet = PACKETS[1]
    assert feed_all(decoder, [frame(packet, framing or Framing.LENGTH_PREFIX)]) == [packet]
