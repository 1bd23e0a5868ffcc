"""A session's states and the moves between them (the table in core/session.py)."""

from __future__ import annotations

import itertools

import pytest

from support.net import RecordingSink
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import IllegalTransition, Session, SessionState
from tcposcrouter.errors import RouterError
from tcposcrouter.osc.framing import AutoDecoder, Framing, MessageDecoder

NEW, REFUSED, REGISTERING, REGISTERED, CLOSING, CLOSED = SessionState

ALLOWED = {
    (NEW, REFUSED),
    (NEW, REGISTERING),
    (NEW, REGISTERED),  # a resume (core/resume.py)
    (NEW, CLOSING),
    (NEW, CLOSED),
    (REFUSED, CLOSING),
    (REFUSED, CLOSED),
    (REGISTERING, REGISTERED),
    (REGISTERING, CLOSING),
    (REGISTERING, CLOSED),
    (REGISTERED, CLOSING),
    (REGISTERED, CLOSED),
    (CLOSING, CLOSED),
}


def session(framing: Framing | None = None) -> Session:
    return Session.open(
        1, "192.0.2.1:4000", "192.0.2.1", 0.0, Outbox().mailbox(RecordingSink(), framing, 1), 64
    )


def in_state(state: SessionState) -> Session:
    s = session()
    path = {
        NEW: [],
        REFUSED: [REFUSED],
        REGISTERING: [REGISTERING],
        REGISTERED: [REGISTERING, REGISTERED],
        CLOSING: [CLOSING],
        CLOSED: [CLOSED],
    }[state]
    for step in path:
        s.move_to(step)
    return s


@pytest.mark.parametrize(("start", "end"), sorted(ALLOWED, key=str))
def test_allowed_moves(start: SessionState, end: SessionState) -> None:
    s = in_state(start)
    s.move_to(end)
    assert s.state is end


ILLEGAL = sorted(set(itertools.product(SessionState, SessionState)) - ALLOWED, key=str)


@pytest.mark.parametrize(("start", "end"), ILLEGAL)
def test_every_other_move_is_refused_and_changes_nothing(
    start: SessionState, end: SessionState
) -> None:
    s = in_state(start)
    with pytest.raises(IllegalTransition):
        s.move_to(end)
    assert s.state is start
    assert issubclass(IllegalTransition, RouterError)


def test_only_sessions_the_router_has_not_given_up_on_take_input() -> None:
    taking = [in_state(state).accepts_input for state in SessionState]
    assert taking == [True, True, True, True, False, False]


def test_framing_is_taken_from_the_first_bytes_or_given() -> None:
    tcp = session()
    assert isinstance(tcp.decoder, AutoDecoder) and tcp.framing is None
    tcp.decoder.feed(b"\xc0")
    tcp.note_framing()
    assert tcp.framing is Framing.SLIP and tcp.mailbox.framing is Framing.SLIP
    ws = session(Framing.WEBSOCKET)
    assert isinstance(ws.decoder, MessageDecoder) and ws.framing is Framing.WEBSOCKET


def test_describe_names_the_peer() -> None:
    assert session().describe() == "[192.0.2.1:4000]"
