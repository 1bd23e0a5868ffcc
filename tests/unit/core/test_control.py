"""Control messages on their own: register, private, ping and the reserved namespace."""

from __future__ import annotations

import pytest

from support.net import RecordingSink
from support.osc import msg, register
from tcposcrouter.core.control import ControlMessages, not_registered
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.elsewhere import ClusterPort
from tcposcrouter.core.login import Login
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.core.settings import Settings
from tcposcrouter.core.statistics import Counters
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder


class Room:
    def __init__(self) -> None:
        self.outbox = Outbox()
        self.directory = Directory()
        self.counters = Counters()
        self.login = Login(Limits(), self.directory)
        port = ClusterPort(self.directory, self.outbox, self.login, self.counters)
        self.controls = ControlMessages(
            Settings(), self.directory, self.outbox, self.login, port, self.counters
        )
        self.sinks: dict[int, RecordingSink] = {}

    def connect(self) -> Session:
        number = len(self.sinks) + 1
        sink = self.sinks[number] = RecordingSink()
        mailbox = self.outbox.mailbox(sink, Framing.LENGTH_PREFIX, number)
        return Session.open(number, f"peer{number}", "192.0.2.1", 0.0, mailbox, 1 << 16)

    def register(self, session: Session, name: str) -> None:
        """A register, its password check run at once, and the join it allows."""
        check = self.controls.handle(session, register(name), 0.0)
        assert check is not None and session.state is SessionState.NEW
        check.run()
        joining = self.login.complete(check, 0.0)
        assert joining is not None
        self.controls.join(session, check.request, joining)

    def received(self, session: Session) -> list[str]:
        self.outbox.flush()
        data = b"".join(self.sinks[session.id].writes)
        self.sinks[session.id].writes.clear()
        return [
            p.split(b"\x00", 1)[0].decode()
            for p in LengthPrefixDecoder().feed(data)
            if isinstance(p, bytes)
        ]


def refused(room: Room, session: Session, message: bytes) -> str:
    with pytest.raises(RemoteError) as info:
        room.controls.handle(session, message, 0.0)
    return info.value.code


def test_register_joins_replies_and_announces() -> None:
    room = Room()
    ana = room.connect()
    room.register(ana, "ana")
    assert ana.state is SessionState.REGISTERED and room.counters.registrations == 1
    assert room.received(ana) == [
        "/oscrouter/register/ana/1",
        "/oscrouter/register",
        "/oscrouter/userlist",
    ]
    assert refused(room, ana, register("ana")) == ErrorCode.ALREADY_REGISTERED


def test_only_a_register_before_registering() -> None:
    room = Room()
    stranger = room.connect()
    for message in (msg("/oscrouter/ping"), msg("/oscrouter/private", "x", "/y")):
        assert refused(room, stranger, message) == ErrorCode.NOT_REGISTERED
    assert not_registered(msg("/note")).fatal


def test_private_ping_and_the_reserved_namespace() -> None:
    room = Room()
    ana, bob = room.connect(), room.connect()
    room.register(ana, "ana")
    room.register(bob, "bob")
    room.received(ana)
    room.received(bob)
    room.controls.handle(ana, msg("/oscrouter/private", "bob", "/hi", 1), 0.0)
    room.controls.handle(ana, msg("/oscrouter/ping", "ana"), 0.0)  # nothing at all
    assert room.received(bob) == ["/oscrouter/private"] and room.received(ana) == []
    assert refused(room, ana, msg("/oscrouter/private", "nobody", "/hi")) == ErrorCode.UNKNOWN_USER
    assert refused(room, ana, msg("/oscrouter/userlist", "fake")) == ErrorCode.UNKNOWN_COMMAND
