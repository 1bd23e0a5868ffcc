"""Reading packets into values for clients: python-osc's values, strings never failing."""

from __future__ import annotations

from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message
from tcposcrouter.osc.messages import time_tag
from tcposcrouter.osc.reading import Message, decode_text, messages_in, read_message

# osc-js 2.4.1: `new OSC.Message('/x', 'hello ü')`.
OSC_JS_HELLO = bytes.fromhex("2f7800002c73000068656c6c6f20fc00")


def test_utf8_is_read_as_utf8_and_anything_else_as_latin1() -> None:
    assert decode_text("Grüße 音".encode()) == "Grüße 音"
    assert decode_text(b"hello \xfc") == "hello ü"
    assert decode_text(bytes(range(1, 256))) == bytes(range(1, 256)).decode("latin-1")
    assert read_message(OSC_JS_HELLO) == Message("/x", "s", ["hello ü"])
    assert read_message(msg("/x", "hello ü")) == Message("/x", "s", ["hello ü"])
    assert read_message(osc_string(b"/caf\xe9") + osc_string(",")).address == "/café"


def test_values_are_python_osc_values() -> None:
    builder = OscMessageBuilder("/every")
    values: list[tuple[Any, str]] = [
        (7, "i"), (0.5, "f"), ("s", "s"), (b"\x01\x02\x03", "b"), (True, "T"), (False, "F"),
        (None, "N"), (2**40, "h"), (0.25, "d"), ((1, 2, 3, 4), "m"), (0xFF0000FF, "r"),
    ]  # fmt: skip
    for value, tag in values:
        builder.add_arg(value, tag)
    raw = builder.build().dgram
    read = read_message(raw)
    assert read.args == list(OscMessage(raw).params)
    assert read.types == "ifsbTFNhdmr"


def test_what_python_osc_leaves_out_is_read_too() -> None:
    raw = raw_message("/x", ",Sc[iI]", osc_string("sym") + (97).to_bytes(4, "big") + bytes(4))
    assert read_message(raw).args == ["sym", "a", [0, float("inf")]]
    assert read_message(osc_string("/bare")).args == []  # no type tag string: OSC 1.0's old form


def test_bundles_give_their_messages_their_time_tag() -> None:
    later = time_tag(1_800_000_000.5)
    inner = bundle(later, msg("/b", 2))
    packet = bundle(IMMEDIATELY, msg("/a", 1), inner, OSC_JS_HELLO)
    found = messages_in(packet)
    assert [(stamp, m.address, m.args) for stamp, m in found] == [
        (IMMEDIATELY, "/a", [1]),
        (later, "/b", [2]),
        (IMMEDIATELY, "/x", ["hello ü"]),
    ]
    assert messages_in(msg("/alone")) == [(None, read_message(msg("/alone")))]


@pytest.mark.parametrize(
    "broken",
    [
        b"/x\x00\x00,i\x00\x00\x00",  # an int cut short
        b"/x\x00\x00s\x00\x00\x00",  # no comma
        raw_message("/x", ",Q"),
        b"#bundle\x00" + IMMEDIATELY + (99).to_bytes(4, "big") + b"/x\x00\x00",
    ],
)
def test_what_is_not_osc_raises_value_error(broken: bytes) -> None:
    with pytest.raises(ValueError):
        messages_in(broken)
