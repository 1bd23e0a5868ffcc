"""Admission: the pools of waiting, checking and registered connections, and who gives way.
A connection's pool is its state (core/session.py): each helper here moves it as the register
and the lifecycle do."""

from __future__ import annotations

from support.net import Net, RecordingSink, error_of
from support.osc import register
from tcposcrouter.core.admission import PATIENCE_SECONDS, Admission
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import REFUSAL_GRACE_SECONDS, Session, SessionState
from tcposcrouter.errors import ErrorCode
from tcposcrouter.limits import Limits

_ids = iter(range(1, 1_000_000))


def connection(address: str = "192.0.2.1", now: float = 0.0) -> Session:
    number = next(_ids)
    mailbox = Outbox().mailbox(RecordingSink(), None, number)
    return Session.open(number, f"{address}:1", address, now, mailbox, 1024)


def begin_register(admission: Admission, session: Session) -> None:
    admission.checking(session)
    session.move_to(SessionState.REGISTERING)


def join(admission: Admission, session: Session) -> None:
    if session.state is SessionState.NEW:
        begin_register(admission, session)
    admission.registered(session)
    session.move_to(SessionState.REGISTERED)


def close(admission: Admission, session: Session) -> None:
    admission.release(session)
    session.move_to(SessionState.CLOSING)


def test_the_oldest_waiting_connection_from_an_address_makes_room() -> None:
    admission = Admission(Limits(max_unregistered_per_address=2))
    first, second = connection(), connection()
    assert admission.admit(first) == (None, []) and admission.admit(second) == (None, [])
    third = connection(now=PATIENCE_SECONDS)
    assert admission.admit(third) == (None, [first])
    close(admission, first)  # the router closes it to make room
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
    begin_register(admission, prompt)
    assert admission.admit(connection(now=10.0)) == (None, [])
    join(admission, prompt)
    assert admission.members_from("192.0.2.1") == 1 and admission.waiting_from("192.0.2.1") == 1


def test_at_the_total_cap_the_oldest_waiting_anywhere_goes_else_refused() -> None:
    admission = Admission(Limits(max_connections=2))
    old, member = connection("192.0.2.1"), connection("192.0.2.2")
    admission.admit(old)
    admission.admit(member)
    join(admission, member)
    newer = connection("192.0.2.3")
    assert admission.admit(newer) == (None, [old])
    close(admission, old)
    join(admission, newer)
    refusal, evicted = admission.admit(connection("192.0.2.4"))
    assert evicted == [] and refusal is not None and refusal.code == ErrorCode.SERVER_FULL
    assert "all of them registered" in refusal.detail


def test_registered_connections_per_address_and_release() -> None:
    admission = Admission(Limits(max_connections_per_address=2))
    sessions = [connection() for _ in range(3)]
    for session in sessions:
        admission.admit(session)
    join(admission, sessions[0])
    assert admission.room_for_member("192.0.2.1")
    join(admission, sessions[1])
    assert not admission.room_for_member("192.0.2.1")
    close(admission, sessions[0])
    admission.release(sessions[0])  # again, once closing, is harmless
    assert admission.room_for_member("192.0.2.1") and admission.connections() == 2


def test_zero_is_no_limit() -> None:
    admission = Admission(
        Limits(max_connections=0, max_connections_per_address=0, max_unregistered_per_address=0)
    )
    assert all(admission.admit(connection()) == (None, []) for _ in range(1000))
    assert admission.room_for_member("192.0.2.1")


def test_too_many_connections_in_all() -> None:
    net = Net(Limits(max_connections=2))
    net.join("ana", address="192.0.2.1")
    net.join("bob", address="192.0.2.2")
    third = net.connect(address="192.0.2.3")
    net.send(third, register("carl"))
    assert error_of(net, third) == "server_full"
    assert third.state is SessionState.CLOSING


def test_registered_connections_from_one_address() -> None:
    net = Net(Limits(max_connections_per_address=2))
    net.join("ana", address="192.0.2.1")
    net.join("bob", address="192.0.2.1")
    extra = net.connect(address="192.0.2.1")
    net.send(extra, register("carl"))
    assert error_of(net, extra) == "server_full"
    net.join("carl", address="192.0.2.2")  # another address is still welcome


def test_waiting_connections_make_room_for_prompt_ones() -> None:
    net = Net(Limits(max_unregistered_per_address=3))
    loop = []
    for _ in range(10):  # a program reconnecting in a loop, every three seconds
        loop.append(net.connect())
        net.now += 3
    assert [s.state for s in loop[:7]] == [SessionState.CLOSING] * 7
    assert all(s.accepts_input for s in loop[7:])
    prompt = [net.join(f"student{i}") for i in range(20)]
    assert all(s.state is SessionState.REGISTERED for s in prompt)
    # The first prompt one made room once; the others registered before anyone had to wait.
    assert net.hub.statistics().made_room == 7 + 1


def test_a_refused_connection_that_never_speaks_is_closed_without_a_word() -> None:
    net = Net(Limits(max_connections=1))
    net.join("ana")
    silent = net.connect()
    net.tick(REFUSAL_GRACE_SECONDS)
    assert silent.state is SessionState.CLOSING
    assert net.got(silent) == []


def test_connection_counts_go_down_when_connections_close() -> None:
    net = Net(Limits(max_connections_per_address=1))
    first = net.join("ana")
    net.leave(first)
    net.join("bob")
    # bob got in, so ana's leaving freed her place; and bob holds the address's only one.
    extra = net.connect()
    net.send(extra, register("carl"))
    assert error_of(net, extra) == "server_full"
