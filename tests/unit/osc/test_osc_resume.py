"""The wire forms of a kept place (osc/resume.py): requests read as Pd, SuperCollider and
python-osc send them, the replies as clients read them, and what is refused."""

from __future__ import annotations

import pytest
from pythonosc.osc_message import OscMessage

from support.osc import IMMEDIATELY, bundle, msg
from tcposcrouter.errors import RemoteError
from tcposcrouter.osc.messages import build_message
from tcposcrouter.osc.resume import (
    message_count,
    read_ack,
    read_resume,
    read_session_request,
    resume_group,
    resumed_message,
    session_reply,
)


def test_seconds_and_acks_are_whole_numbers_as_i_h_or_an_integral_float() -> None:
    assert read_session_request(msg("/oscrouter/session", 30)).seconds == 30
    assert read_session_request(msg("/oscrouter/session", 30.0)).seconds == 30  # Pd sends f
    assert read_session_request(build_message("/oscrouter/session", ("d", 0.0))).seconds == 0
    assert read_ack(build_message("/oscrouter/session/ack", ("h", 5_000_000_000))) == 5_000_000_000
    for bad in (
        msg("/oscrouter/session"),
        msg("/oscrouter/session", 1.5),
        msg("/oscrouter/session", -1),
        msg("/oscrouter/session", "30"),
        msg("/oscrouter/session", 1, 2),
        msg("/oscrouter/session", 1, "bytes"),
        msg("/oscrouter/session", 1, "messages", 2),
        build_message("/oscrouter/session", ("f", float("nan"))),
    ):
        with pytest.raises(RemoteError) as refused:
            read_session_request(bad)
        assert refused.value.code == "bad_session" and not refused.value.fatal


def test_a_resume_is_read_and_a_malformed_one_is_resume_expired() -> None:
    request = read_resume(msg("/oscrouter/session/resume", "band", "tok", 7))
    assert (request.group, request.token, request.received) == ("band", "tok", 7)
    assert "tok" not in repr(request)  # a token never reaches a log line
    for bad in (
        msg("/oscrouter/session/resume", "band", "tok"),
        msg("/oscrouter/session/resume", "band", 3, 7),
        msg("/oscrouter/session/resume", "band", "tok", -1),
    ):
        with pytest.raises(RemoteError) as refused:
            read_resume(bad)
        assert refused.value.code == "resume_expired"


def test_the_group_of_a_resume_is_found_for_workers_and_nothing_else_is() -> None:
    assert resume_group(msg("/oscrouter/session/resume", "band", "tok", 0)) == "band"
    assert resume_group(msg("/oscrouter/session/resume", "band")) is None
    assert resume_group(msg("/oscrouter/register", "a", "b", "c", "d")) is None
    assert resume_group(b"/oscrouter/session/resume\x00\x00\x00,ssi") is None  # truncated


def test_the_replies_read_as_a_client_reads_them() -> None:
    reply = OscMessage(session_reply("tok", 60))
    assert (reply.address, reply.params) == ("/oscrouter/session", ["tok", 60])
    resumed = OscMessage(resumed_message(12))
    assert (resumed.address, resumed.params) == ("/oscrouter/session/resumed", [12])


def test_a_session_counts_packets_or_the_messages_in_them() -> None:
    assert not read_session_request(msg("/oscrouter/session", 30)).by_messages
    assert not read_session_request(msg("/oscrouter/session", 30, "packets")).by_messages
    assert read_session_request(msg("/oscrouter/session", 30.0, "messages")).by_messages
    assert message_count(msg("/a", 1)) == 1
    inner = bundle(IMMEDIATELY, msg("/b", 1), msg("/c", 2))
    assert message_count(inner) == 2
    assert message_count(bundle(IMMEDIATELY, msg("/a"), inner, bundle(IMMEDIATELY))) == 3
