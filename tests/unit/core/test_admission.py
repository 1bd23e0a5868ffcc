"""Admission: the pools of waiting, checking and registered connections, and who gives way."""

from __future__ import annotations

from support.net import RecordingSink
from tcposcrouter.core.admission import PATIENCE_SECONDS, Admission
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import Session
from tcposcrouter.errors import ErrorCode
from tcposcrouter.limits import Limits

_ids = iter(range(1, 1_000_000))


def connection(address: str = "192.0.2.1", now: float = 0.0) -> Session:
    number = next(_ids)
    mailbox = Outbox().mailbox(RecordingSink(), None, number)
    return Session.open(number, f"{address}:1", address, now, mailbox, 1024)


def test_the_oldest_waiting_connection_from_an_address_makes_room() -> None:
    admission = Admission(Limits(max_unregistered_per_address=2))
    first, second = connection(), connection()
    assert admission.admit(first) == (None, []) and admission.admit(second) == (None, [])
    third = connection(now=PATIENCE_SECONDS)
    assert admission.admit(third) == (None, [first])
    assert admission.waiting_from("192.0.2.1") == 2 and admission.connections() == 2
    assert admission.admit(connection("192.0.2.2")) == (None, [])  # another address: no effect


def test_a_classroom_connecting_at_once_is_not_cut_down_to_the_cap() -> None:
    admission = Admission(Limits(max_unregistered_per_address=64))
    storm = [connection(now=i / 1000) for i in range(200)]  # 200 in 0.2 s, none registered yet
    assert all(admission.admit(s) == (None, []) for s in storm)
    late = connection(now=PATIENCE_SECONDS + 0.1)  # the first of them have waited long now
    assert admission.admit(late) == (None, [storm[0]])


def test_a_connection_that_sent_its_register_never_gives_way() -> None:
    admission = Admission(Limits(max_unregistered_per_address=1))
    prompt = connection()
    admission.admit(prompt)
    admission.checking(prompt)
    assert admission.admit(connection(now=10.0)) == (None, [])
    admission.registered(prompt)
    assert admission.members_from("192.0.2.1") == 1 and admission.waiting_from("192.0.2.1") == 1


def test_at_the_total_cap_the_oldest_waiting_anywhere_goes_else_refused() -> None:
    admission = Admission(Limits(max_connections=2))
    old, member = connection("192.0.2.1"), connection("192.0.2.2")
    admission.admit(old)
    admission.admit(member)
    admission.registered(member)
    newer = connection("192.0.2.3")
    assert admission.admit(newer) == (None, [old])
    admission.registered(newer)
    refusal, evicted = admission.admit(connection("192.0.2.4"))
    assert evicted == [] and refusal is not None and refusal.code == ErrorCode.SERVER_FULL
    assert "all of them registered" in refusal.detail


def test_registered_connections_per_address_and_release() -> None:
    admission = Admission(Limits(max_connections_per_address=2))
    sessions = [connection() for _ in range(3)]
    for session in sessions:
        admission.admit(session)
    admission.registered(sessions[0])
    assert admission.room_for_member("192.0.2.1")
    admission.registered(sessions[1])
    assert not admission.room_for_member("192.0.2.1")
    admission.release(sessions[0])
    admission.release(sessions[0])  # twice is harmless
    assert admission.room_for_member("192.0.2.1") and admission.connections() == 2


def test_zero_is_no_limit() -> None:
    admission = Admission(
        Limits(max_connections=0, max_connections_per_address=0, max_unregistered_per_address=0)
    )
    assert all(admission.admit(connection()) == (None, []) for _ in range(1000))
    assert admission.room_for_member("192.0.2.1")
