"""The wire forms of the tempo and of /oscrouter/info (osc/tempo.py): what a client's requests
carry, as python-osc and Pd send them, and the router's messages, as python-osc reads them."""

from __future__ import annotations

import struct

import pytest
from pythonosc.osc_message import OscMessage

from support.osc import msg
from tcposcrouter.errors import RemoteError
from tcposcrouter.osc.messages import unix_time
from tcposcrouter.osc.tempo import (
    PlayRequest,
    TempoRequest,
    info_message,
    read_tempo_ask,
    read_tempo_play,
    read_tempo_relative,
    read_tempo_set,
    relative_tempo_message,
    tempo_message,
)


def raw(address: str, tags: str, payload: bytes) -> bytes:
    """A message with the type tags written out, as Pd's and sclang's numbers arrive."""

    def pad(text: bytes) -> bytes:
        return text + b"\x00" * (4 - len(text) % 4)

    return pad(address.encode()) + pad(tags.encode()) + payload


def test_a_set_with_bpm_alone_with_a_beat_and_with_a_bar_length() -> None:
    assert read_tempo_set(msg("/oscrouter/tempo/set", 90.0)) == TempoRequest(90.0, None, None)
    doubles = raw("/oscrouter/tempo/set", ",dd", struct.pack(">dd", 140.0, 16.0))
    assert read_tempo_set(doubles) == TempoRequest(140.0, 16.0, None)
    pd = raw("/oscrouter/tempo/set", ",fff", struct.pack(">fff", 100.0, 8.0, 3.0))  # all floats
    assert read_tempo_set(pd) == TempoRequest(100.0, 8.0, 3)
    ints = raw("/oscrouter/tempo/set", ",iii", struct.pack(">iii", 120, 12, 3))
    assert read_tempo_set(ints) == TempoRequest(120.0, 12.0, 3)


@pytest.mark.parametrize(
    "message",
    [
        msg("/oscrouter/tempo/set"),
        msg("/oscrouter/tempo/set", "fast"),
        msg("/oscrouter/tempo/set", 120.0, 4.0, 3.5),  # a bar of three and a half beats
        msg("/oscrouter/tempo/set", 120.0, 4.0, 4, 1),
        raw("/oscrouter/tempo/set", ",d", struct.pack(">d", float("nan"))),
        raw("/oscrouter/tempo/set", ",d", struct.pack(">d", float("inf"))),
    ],
)
def test_a_set_outside_the_contract_is_bad_tempo(message: bytes) -> None:
    with pytest.raises(RemoteError) as refused:
        read_tempo_set(message)
    assert refused.value.code == "bad_tempo" and not refused.value.fatal


def test_play_and_the_ask() -> None:
    assert read_tempo_play(msg("/oscrouter/tempo/play", 0)) == PlayRequest(0, None)
    pd = raw("/oscrouter/tempo/play", ",ff", struct.pack(">ff", 1.0, 32.0))
    assert read_tempo_play(pd) == PlayRequest(1, 32.0)
    for wrong in (msg("/oscrouter/tempo/play", 2), msg("/oscrouter/tempo/play")):
        with pytest.raises(RemoteError):
            read_tempo_play(wrong)
    read_tempo_ask(msg("/oscrouter/tempo"))
    with pytest.raises(RemoteError):
        read_tempo_ask(msg("/oscrouter/tempo", 120.0))


def test_the_tempo_message_as_a_client_library_reads_it() -> None:
    packet = tempo_message(1_800_000_000.25, 7.5, 96.0, 3, 0)
    message = OscMessage(packet)
    assert message.address == "/oscrouter/tempo"
    _, beat, bpm, quantum, playing = message.params
    assert (beat, bpm, quantum, playing) == (7.5, 96.0, 3, 0)
    assert unix_time(packet[28:36]) == pytest.approx(1_800_000_000.25, abs=1e-6)


def test_info_names_the_version_and_the_features() -> None:
    message = OscMessage(info_message("1.2.3", ["time", "tempo"]))
    assert (message.address, message.params) == ("/oscrouter/info", ["1.2.3", "time", "tempo"])


def test_the_relative_form_is_floats_a_pd_patch_reads() -> None:
    packet = relative_tempo_message(8.0, 90.0, 4, 1, 2.5)
    assert packet == msg("/oscrouter/tempo/relative", 8.0, 90.0, 4, 1, 2.5)  # ,ffiif
    assert read_tempo_relative(msg("/oscrouter/tempo/relative", 1)) is True
    assert read_tempo_relative(msg("/oscrouter/tempo/relative", 0.0)) is False  # Pd sends f
    for bad in (msg("/oscrouter/tempo/relative"), msg("/oscrouter/tempo/relative", 3)):
        with pytest.raises(RemoteError):
            read_tempo_relative(bad)
