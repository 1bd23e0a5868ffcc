"""Driving the pure hub with bytes: connections with recording sinks and a clock the test moves."""

from __future__ import annotations

from pythonosc.osc_message import OscMessage

from support.osc import register
from tcposcrouter.core.hub import Hub
from tcposcrouter.core.register import PasswordCheck
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import (
    AutoDecoder,
    Framing,
    InvalidFrame,
    PacketDecoder,
    decoder_for,
    frame,
)
from tcposcrouter.server.config import ServerConfig

__all__ = ["LP", "SLIP", "WS", "Net", "RecordingSink", "error_of"]

LP, SLIP, WS = Framing.LENGTH_PREFIX, Framing.SLIP, Framing.WEBSOCKET


class RecordingSink:
    """A `Sink` that keeps every write, and whether it was closed or reset."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.was_reset = False

    def write(self, data: bytes) -> None:
        assert not (self.closed or self.was_reset), "written to after its end"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def reset(self) -> None:
        self.was_reset = True


class Net:
    """Connects sessions to a hub and collects what the hub writes to each of them.

    Password checks run at once, as the hub runs keyed ones and the shell's worker threads the
    others, unless `hold_checks`: then every check goes to the shell, as on a node of a cluster
    (its hashes go through the store), and waits in `checks` until `run_checks()`. What
    `receive` and `password_checked` return (how long to stop reading) is kept in `pauses`, by
    session id."""

    def __init__(self, limits: Limits | None = None, *, hold_checks: bool = False) -> None:
        self.hub = Hub(ServerConfig(limits=limits or Limits()))
        self.hub.registers.hashes_shared = hold_checks
        self.hold_checks = hold_checks
        self.checks: list[PasswordCheck] = []
        self.pauses: dict[int, float] = {}
        self.now = 1000.0  # the clock the hub is given; tests move it forward
        self.sinks: dict[int, RecordingSink] = {}
        self._decoders: dict[int, PacketDecoder] = {}
        self._framings: dict[int, Framing | None] = {}  # None: whatever the bytes say
        self._read: dict[int, int] = {}  # writes of each sink already decoded
        self._inbox: dict[int, list[bytes]] = {}

    def connect(
        self,
        framing: Framing | None = LP,
        address: str = "192.0.2.1",
        *,
        websocket: bool = False,
    ) -> Session:
        """A TCP connection (framing detected from its bytes) or, with `websocket`, a WebSocket."""
        sink = RecordingSink()
        session = self.hub.open(
            f"{address}:40000", address, self.now, sink, WS if websocket else None
        )
        self.sinks[session.id] = sink
        self._framings[session.id] = WS if websocket else framing
        self._decoders[session.id] = decoder_for(WS, 1 << 24) if websocket else AutoDecoder(1 << 24)
        self._read[session.id] = 0
        self._inbox[session.id] = []
        return session

    def send(self, session: Session, *packets: bytes) -> None:
        """The packets arrive in one read (for WebSocket: one message each)."""
        framing = self._framings[session.id] or LP
        if framing is WS:
            for packet in packets:
                self._receive(session, packet)
        else:
            self._receive(session, b"".join(frame(p, framing) for p in packets))
        self.collect()

    def send_bytes(self, session: Session, data: bytes) -> None:
        self._receive(session, data)
        self.collect()

    def _receive(self, session: Session, data: bytes) -> None:
        self.pauses[session.id] = self.hub.receive(session, data, self.now)
        self.checks.extend(self.hub.registers.take())
        if not self.hold_checks:
            self.run_checks()

    def run_checks(self) -> None:
        """Run the waiting password checks and hand them back, as the shell does."""
        while self.checks:
            check = self.checks.pop(0)
            check.run()
            pause = self.hub.checked(check, self.now)
            self.pauses[check.session.id] = pause
            self.checks.extend(self.hub.registers.take())
        self.collect()

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.hub.tick(self.now)
        self.collect()

    def leave(self, session: Session) -> None:
        self.hub.gone(session, self.now)
        self.collect()

    def collect(self) -> None:
        """Flush the hub, as the shell does at the end of a loop turn, and decode the writes."""
        self.hub.flush()
        for session_id, sink in self.sinks.items():
            new = sink.writes[self._read[session_id] :]
            self._read[session_id] = len(sink.writes)
            decoder = self._decoders[session_id]
            for data in new:
                decoded = decoder.feed(data)
                assert not any(isinstance(p, InvalidFrame) for p in decoded)
                self._inbox[session_id].extend(p for p in decoded if isinstance(p, bytes))
            expected = self._framings[session_id]
            if new and expected is not None:
                assert decoder.framing is expected

    def got(self, session: Session) -> list[bytes]:
        packets, self._inbox[session.id] = self._inbox[session.id], []
        return packets

    def got_messages(self, session: Session) -> list[tuple[str, list[object]]]:
        return [(m.address, list(m.params)) for m in map(OscMessage, self.got(session))]

    def join(
        self,
        user: str,
        group: str = "band",
        framing: Framing = LP,
        *,
        password: str = "pw",
        group_password: str = "gpw",
        address: str = "192.0.2.1",
        websocket: bool = False,
    ) -> Session:
        session = self.connect(framing, address, websocket=websocket)
        self.send(session, register(user, group, password=password, group_password=group_password))
        if self.hold_checks:
            self.run_checks()
        assert session.state is SessionState.REGISTERED
        self.got(session)
        return session


def error_of(net: Net, session: Session) -> str:
    (address, args), *_ = net.got_messages(session)
    assert address == "/oscrouter/error"
    assert isinstance(args[0], str)
    return args[0]
