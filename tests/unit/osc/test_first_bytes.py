"""What a stream speaks, from its first byte: every real client's first bytes are told apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcposcrouter.osc.first_bytes import Speaks, first_bytes_speak
from tcposcrouter.osc.framing import frame_length_prefix, frame_slip
from tcposcrouter.osc.messages import register_message

REGISTER = register_message("ana", "pw", "band", "gpw", 7)


@pytest.mark.parametrize(
    ("first", "speaks"),
    [
        (frame_length_prefix(REGISTER), Speaks.OSC_LENGTH_PREFIX),  # sclang, liblo
        (frame_slip(REGISTER), Speaks.OSC_SLIP),  # Pd's [slipenc], python-osc
        (REGISTER + b"\xc0", Speaks.OSC_SLIP),  # SLIP without the leading END
        (b"#bundle\x00", Speaks.OSC_SLIP),
        (b"GET /osc HTTP/1.1\r\n", Speaks.HTTP),  # a WebSocket or a browser
        (b"HTTP/1.1 400 Bad Request\r\n", Speaks.HTTP),  # a web server's answer
        (b"OPTIONS * HTTP/1.1\r\n", Speaks.HTTP),
        (b"\x16\x03\x01\x02\x00", Speaks.TLS),  # a ClientHello
        (b"\x15\x03\x03\x00\x02\x02\x46", Speaks.TLS),  # an alert
        (b"hello\n", Speaks.UNKNOWN),  # telnet
        (b"{", Speaks.UNKNOWN),
    ],
)
def test_real_first_bytes(first: bytes, speaks: Speaks) -> None:
    assert first_bytes_speak(first) is speaks
    assert first_bytes_speak(first[:1]) is speaks  # one byte is enough


def test_nothing_yet_says_nothing() -> None:
    assert first_bytes_speak(b"") is None


@given(st.binary(min_size=1, max_size=64))
def test_every_stream_is_one_kind_and_osc_is_never_taken_for_another(data: bytes) -> None:
    speaks = first_bytes_speak(data)
    assert isinstance(speaks, Speaks)
    if data[0] in (0, 0xC0, ord("/"), ord("#")):
        assert speaks in (Speaks.OSC_LENGTH_PREFIX, Speaks.OSC_SLIP)
