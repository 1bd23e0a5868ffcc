"""Control messages on their own: register, private, ping and the reserved namespace."""

from __future__ import annotations

import pytest

from support.net import Net, RecordingSink, error_of
from support.osc import msg
from tcposcrouter.core.admission import Admission
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.control import ControlMessages, not_registered
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.elsewhere import ClusterPort
from tcposcrouter.core.hub import Hub
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.resume import Resumes
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.core.settings import Settings
from tcposcrouter.core.statistics import Counters
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder
from tcposcrouter.osc.messages import TIME
from tcposcrouter.server.config import ServerConfig


class Room:
    def __init__(self) -> None:
        self.outbox = Outbox()
        self.directory = Directory()
        self.counters = Counters()
        self.hub = Hub(ServerConfig())
        settings = Settings()
        port = ClusterPort(self.directory, self.outbox, self.hub.registers, self.counters, settings)
        resumes = Resumes(settings, self.outbox, Admission(settings.limits), self.counters)
        self.controls = ControlMessages(settings, self.outbox, port, resumes)
        self.sinks: dict[int, RecordingSink] = {}

    def connect(self) -> Session:
        number = len(self.sinks) + 1
        sink = self.sinks[number] = RecordingSink()
        mailbox = self.outbox.mailbox(sink, Framing.LENGTH_PREFIX, number)
        return Session.open(number, f"peer{number}", "192.0.2.1", 0.0, mailbox, 1 << 16)

    def register(self, session: Session, name: str) -> None:
        """A member of the room's directory, as a register would have made it."""
        self.directory.join(session, "band", name, PasswordHash.keyed("g"), PasswordHash.keyed("p"))
        session.move_to(SessionState.REGISTERING)
        session.move_to(SessionState.REGISTERED)

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
    room.controls.handle(ana, msg("/oscrouter/private", "bob", "/hi", 1), 0.0)
    room.controls.handle(ana, msg("/oscrouter/ping", "ana"), 0.0)  # nothing at all
    assert room.received(bob) == ["/oscrouter/private"] and room.received(ana) == []
    assert refused(room, ana, msg("/oscrouter/private", "nobody", "/hi")) == ErrorCode.UNKNOWN_USER
    assert refused(room, ana, msg("/oscrouter/userlist", "fake")) == ErrorCode.UNKNOWN_COMMAND


def test_the_time_service_answers_the_sender_alone() -> None:
    net = Net()
    ana = net.join("ana")
    bob = net.join("bob")
    net.got(ana)
    net.hub.set_wall_clock(1_800_000_000.25 - net.now)  # Unix time 1,800,000,000.25 is now
    client_time = bytes.fromhex("e9c3f7a0 00000001")
    net.send(ana, TIME + b",t\x00\x00" + client_time)
    (reply,) = net.got(ana)
    assert reply[:24] == TIME + b",ttt\x00\x00\x00\x00"
    assert reply[24:32] == client_time  # echoed byte for byte
    seconds = int.from_bytes(reply[32:36], "big") - 2_208_988_800
    fraction = int.from_bytes(reply[36:40], "big") / 2**32
    assert (seconds, fraction) == (1_800_000_000, 0.25)
    assert reply[40:48] == reply[32:40]  # sent in the same turn as received
    assert net.got(bob) == []


def test_a_time_request_without_one_time_tag_is_refused() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/time", 1))
    assert error_of(net, ana) == ErrorCode.BAD_TIME
    net.send(ana, TIME + b",t\x00\x00" + bytes(8))  # the connection is still registered
    assert net.got_messages(ana)[0][0] == "/oscrouter/time"


def test_time_before_register_is_not_registered() -> None:
    net = Net()
    stranger = net.connect()
    net.send(stranger, TIME + b",t\x00\x00" + bytes(8))
    assert error_of(net, stranger) == ErrorCode.NOT_REGISTERED
