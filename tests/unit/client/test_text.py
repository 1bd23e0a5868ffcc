"""The command line's message syntax, and the stable form `listen` prints."""

from __future__ import annotations

import pytest

from support.osc import IMMEDIATELY, bundle, msg, raw_message
from tcposcrouter.client.protocol import build_message
from tcposcrouter.client.text import BadMessageText, format_packet, packet_records, parse_message
from tcposcrouter.osc.messages import time_tag


def test_words_and_lines_mean_the_same_message() -> None:
    expected = build_message(
        "/note", ("i", 60), ("f", 0.5), ("s", "two words"), ("s", "piano"), True, None,
        ("d", 0.25), ("h", 2**40), ("b", b"\xca\xfe"), ("s", "60"),
    )  # fmt: skip
    line = '/note 60 0.5 "two words" piano T N d:0.25 h:1099511627776 b:cafe s:60'
    words = ["/note", "60", "0.5", "two words", "piano", "T", "N", "d:0.25", "h:1099511627776",
             "b:cafe", "s:60"]  # fmt: skip
    assert parse_message(line) == expected
    assert parse_message(words) == expected


def test_quotes_escapes_colours_and_midi() -> None:
    assert parse_message(r'/q "say \"hi\""') == msg("/q", 'say "hi"')
    assert parse_message("/c r:ff000080 m:00903c7f") == raw_message(
        "/c", ",rm", b"\xff\x00\x00\x80\x00\x90\x3c\x7f"
    )


@pytest.mark.parametrize(
    "text", ["", "note 1", '"/quoted" 1', "/x i:one", "/x b:xyz", "/x m:0090", "/x r:ff"]
)
def test_bad_text_says_what_is_wrong(text: str) -> None:
    with pytest.raises(BadMessageText):
        parse_message(text)


def test_the_printed_form() -> None:
    assert format_packet(msg("/note", 60, 0.5, 'pi"ano', b"\x01\x02")) == [
        '/note ifsb 60 0.5 "pi\\"ano" b:0102'
    ]
    assert format_packet(msg("/bang")) == ["/bang"]
    chord = bundle(time_tag(1_800_000_000.5), msg("/a", 1), bundle(IMMEDIATELY, msg("/b", "x")))
    assert format_packet(chord) == [
        "@1800000000.500000 /a i 1",
        '@now /b s "x"',
    ]
    assert format_packet(raw_message("/t", ",TFN")) == ["/t TFN T F N"]


def test_the_json_form() -> None:
    chord = bundle(IMMEDIATELY, msg("/a", 1, "x", b"\xff"))
    assert packet_records(chord) == [
        {"address": "/a", "types": "isb", "args": [1, "x", {"hex": "ff"}], "bundle_time": None}
    ]
    assert packet_records(msg("/n", 0.5)) == [{"address": "/n", "types": "f", "args": [0.5]}]
