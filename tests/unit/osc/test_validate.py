"""Packet validation for every type tag, and control-bundle splitting (docs/protocol.md §2, §3)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder

from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.osc.validate import MAX_BUNDLE_DEPTH, split_bundle_controls, validate_packet

# One valid argument payload for each type tag of the contract (docs/protocol.md §2).
ONE_OF_EACH = {
    "i": struct.pack(">i", -5),
    "f": struct.pack(">f", 0.5),
    "s": osc_string("text"),
    "b": struct.pack(">i", 5) + b"12345\x00\x00\x00",
    "h": struct.pack(">q", 2**40),
    "t": b"\x00\x00\x00\x01\x00\x00\x00\x02",
    "d": struct.pack(">d", 0.1),
    "S": osc_string("symbol"),
    "c": struct.pack(">i", ord("x")),
    "r": b"\x10\x20\x30\x40",
    "m": b"\x00\x90\x3c\x7f",
    "T": b"",
    "F": b"",
    "N": b"",
    "I": b"",
}


def invalid(packet: bytes) -> str:
    with pytest.raises(RemoteError) as info:
        validate_packet(packet)
    assert info.value.code == ErrorCode.PACKET_INVALID
    assert not info.value.fatal
    return info.value.detail


@pytest.mark.parametrize("tag", sorted(ONE_OF_EACH))
def test_every_type_tag_is_valid(tag: str) -> None:
    assert validate_packet(raw_message("/x", "," + tag, ONE_OF_EACH[tag])) is False


@pytest.mark.parametrize("tag", sorted(t for t, payload in ONE_OF_EACH.items() if payload))
def test_every_type_tag_with_its_argument_missing_is_invalid(tag: str) -> None:
    assert "run" in invalid(raw_message("/x", "," + tag, b""))


def test_all_tags_together_and_arrays() -> None:
    tags = "," + "".join(ONE_OF_EACH) + "[ii[s]]"
    payload = b"".join(ONE_OF_EACH.values()) + struct.pack(">ii", 1, 2) + osc_string("in")
    assert validate_packet(raw_message("/all", tags, payload)) is False


def test_messages_from_python_osc_are_valid() -> None:
    builder = OscMessageBuilder("/synth/1")
    for value in (1, 2.5, "x", b"blob", True, False, None):
        builder.add_arg(value)
    assert validate_packet(bytes(builder.build().dgram)) is False


def test_message_without_type_tags_has_no_arguments() -> None:
    assert validate_packet(osc_string("/old/style")) is False


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (b"", "empty"),
        (b"/ab", "multiple of 4"),
        (b"abc\x00", "neither"),
        (b"/abc", "NUL"),
        (osc_string("/x") + b"i\x00\x00\x00", "','"),
        (osc_string("/x") + b",iii", "NUL"),
        (raw_message("/x", ",q", b"\x00" * 4), "unknown type tag"),
        (raw_message("/x", ",i", b"\x00" * 8), "left over"),
        (raw_message("/x", ",s", b"abcd"), "NUL"),
        (raw_message("/x", ",b", struct.pack(">i", -4)), "negative"),
        (raw_message("/x", ",b", struct.pack(">i", 100) + b"\x00" * 4), "past the end"),
        (raw_message("/x", ",[i", b"\x00" * 4), "'['"),
        (raw_message("/x", ",i]", b"\x00" * 4), "']'"),
        (raw_message("/x", ",s]", osc_string("a")), "']'"),
    ],
)
def test_malformed_messages_are_invalid(packet: bytes, why: str) -> None:
    assert why in invalid(packet)


def test_ten_thousand_arguments_are_fine_when_they_match() -> None:
    packet = raw_message("/many", "," + "i" * 10_000, b"\x00\x00\x00\x01" * 10_000)
    assert validate_packet(packet) is False
    assert "past the end" in invalid(packet[:-4])


def test_control_messages_are_recognised() -> None:
    assert validate_packet(msg("/oscrouter/ping", "me")) is True
    assert validate_packet(msg("/oscrouterx", 1)) is False
    assert validate_packet(msg("/not/oscrouter/ping")) is False


def test_bundles() -> None:
    note = msg("/note", 60)
    assert validate_packet(bundle(IMMEDIATELY)) is False  # an empty bundle is a bundle
    assert validate_packet(bundle(IMMEDIATELY, note, bundle(IMMEDIATELY, note))) is False
    assert validate_packet(bundle(IMMEDIATELY, note, msg("/oscrouter/ping"))) is True
    assert validate_packet(bundle(IMMEDIATELY, bundle(IMMEDIATELY, msg("/oscrouter/ping"))))


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (b"#bundle\x00", "header"),
        (b"#bundlX\x00" + IMMEDIATELY, "header"),
        (b"#bundle\x00" + IMMEDIATELY + b"\x00\x00", "multiple of 4"),
        (b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", 0), "does not fit"),
        (b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", -4) + b"\x00" * 4, "does not fit"),
        (b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", 64) + osc_string("/x"), "does not fit"),
        (bundle(IMMEDIATELY, b"/x\x00"), "multiple of 4"),
        (bundle(IMMEDIATELY, b"/x\x00") + b"\x00", "does not fit"),
        (bundle(IMMEDIATELY, b"abcd"), "neither"),
    ],
)
def test_malformed_bundles_are_invalid(packet: bytes, why: str) -> None:
    assert why in invalid(packet)


def test_bundles_nested_too_deep_are_invalid() -> None:
    packet = msg("/deep")
    for _ in range(MAX_BUNDLE_DEPTH):
        packet = bundle(IMMEDIATELY, packet)
    assert validate_packet(packet) is False
    assert "nested" in invalid(bundle(IMMEDIATELY, packet))


def test_split_bundle_controls_keeps_order_and_time_tags() -> None:
    timetag = b"\x00\x00\x00\x09\x00\x00\x00\x01"
    inner_tag = b"\x00\x00\x00\x0a\x00\x00\x00\x01"
    register = msg("/oscrouter/register", "u", "p", "g", "gp")
    ping = msg("/oscrouter/ping")
    note = msg("/note", 1)
    packet = bundle(timetag, register, note, bundle(inner_tag, ping, note))
    controls, rest = split_bundle_controls(packet)
    assert controls == [register, ping]
    assert rest == bundle(timetag, note, bundle(inner_tag, note))
    assert split_bundle_controls(bundle(timetag, register)) == ([register], None)


tag_values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ("i", struct.pack(">i", v))),
    st.floats(width=32).map(lambda v: ("f", struct.pack(">f", v))),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=20,
    ).map(lambda v: ("s", osc_string(v))),
    st.binary(max_size=20).map(
        lambda v: ("b", struct.pack(">i", len(v)) + v + b"\x00" * (-len(v) % 4))
    ),
    st.sampled_from(sorted(ONE_OF_EACH.items())),
)


@given(st.lists(tag_values, max_size=20))
def test_any_well_formed_message_is_valid(arguments: list[tuple[str, bytes]]) -> None:
    tags = "," + "".join(tag for tag, _ in arguments)
    packet = raw_message("/gen", tags, b"".join(payload for _, payload in arguments))
    assert validate_packet(packet) is False
    assert validate_packet(bundle(IMMEDIATELY, packet, packet)) is False


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_packet_invalid(data: bytes) -> None:
    for packet in (data, b"/" + data, b"#bundle\x00" + data, osc_string("/x") + b"," + data):
        try:
            validate_packet(packet)
        except RemoteError as error:
            assert error.code == ErrorCode.PACKET_INVALID


@given(st.lists(tag_values, min_size=1, max_size=10), st.data())
def test_extended_messages_are_invalid_and_truncated_ones_never_crash(
    arguments: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    tags = "," + "".join(tag for tag, _ in arguments)
    packet = raw_message("/gen", tags, b"".join(payload for _, payload in arguments))
    assert "left over" in invalid(packet + b"\x00\x00\x00\x00")
    cut = data.draw(st.integers(1, len(packet) // 4 - 1)) * 4
    try:
        validate_packet(packet[:cut])  # may still be valid: cut right after the address
    except RemoteError as error:
        assert error.code == ErrorCode.PACKET_INVALID


# osc-js (Strudel) sends every character below 256 as one byte: `new OSC.Message('/x',
# 'hello ü')` is these bytes (the string `68 65 6c 6c 6f 20 fc 00`).
OSC_JS_LATIN1 = b"/x\x00\x00,s\x00\x00hello \xfc\x00"


@pytest.mark.parametrize(
    "packet",
    [
        OSC_JS_LATIN1,
        osc_string(b"/caf\xe9") + osc_string(","),  # an address in Latin-1
        raw_message("/x", ",s", osc_string(b"\xff\xfe\xfd")),
        raw_message("/x", ",S", osc_string(b"caf\xc3")),  # UTF-8 cut short
        raw_message("/x", ",is", b"\x00\x00\x00\x01" + osc_string(b"\xed\xa0\x80")),
        bundle(IMMEDIATELY, raw_message("/x", ",s", osc_string(b"\xc0\xaf"))),
    ],
)
def test_strings_in_any_encoding_are_valid(packet: bytes) -> None:
    # OSC 1.0: a string is bytes up to a NUL. The router forwards them as they came.
    assert validate_packet(packet) is False


def test_a_string_still_needs_its_nul() -> None:
    with pytest.raises(RemoteError) as info:
        validate_packet(b"/x\x00\x00,s\x00\x00hello \xfc")
    assert info.value.code == ErrorCode.PACKET_INVALID


def test_multibyte_utf8_is_valid_everywhere() -> None:
    text = "Grüße, 音楽, 🎹".encode()
    for packet in (
        osc_string("/räum/音".encode()) + osc_string(",sS") + osc_string(text) + osc_string(text),
        bundle(IMMEDIATELY, raw_message("/x", ",s", osc_string(text))),
    ):
        assert validate_packet(packet) is False
    # The same address again takes the cached path, and its strings are still walked.
    again = osc_string("/räum/音".encode()) + osc_string(",sS") + osc_string(text) + b"\xff"
    with pytest.raises(RemoteError):
        validate_packet(again)  # the last string has no NUL
