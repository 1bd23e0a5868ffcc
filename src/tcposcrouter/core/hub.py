"""The router as a pure object: bytes in from connections, decisions and bytes out.

The shell calls `open`, `receive` with every chunk read, `tick` once a second, `close` when a
connection is gone and `flush` once per loop turn while `has_output`, passing the time to each.
The packet loop (receive, route, broadcast) is here and only here; the cold paths are parts with
one job each, reached as attributes: `checks` (the register pipeline), `errors` (the error
policy), `login`, `cluster` (the port to other nodes) and `directory` (docs/architecture.md).
Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.framing import Framing, InvalidFrame
from ..osc.messages import packet_summary
from ..osc.validate import split_bundle_controls, validate_packet
from .admission import Admission
from .control import ControlMessages, not_registered
from .directory import Directory
from .elsewhere import ClusterPort
from .lifecycle import Lifecycle
from .login import Login
from .outbox import Outbox, Sink
from .policy import ErrorPolicy
from .registration import WAIT_FOR_CHECK, Registrations
from .session import Session, SessionState
from .settings import HubConfig, Settings
from .statistics import Counters, HubStatistics, snapshot
from .timers import Timers

__all__ = ["WAIT_FOR_CHECK", "Hub", "HubConfig"]

log = logging.getLogger("tcposcrouter.hub")

REGISTERED = SessionState.REGISTERED


class Hub:
    def __init__(self, config: HubConfig | None = None) -> None:
        config = config or HubConfig()
        self._settings = settings = Settings(config.limits, config.log_messages)
        self._sessions: dict[int, Session] = {}
        self._counters = counters = Counters()
        self._outbox = outbox = Outbox()
        self._admission = admission = Admission(config.limits)
        self.directory = directory = Directory()
        self.login = login = Login(config.limits, directory)
        self.cluster = cluster = ClusterPort(directory, outbox, login, counters)
        lifecycle = Lifecycle(settings, self._sessions, directory, outbox, admission, counters)
        self._lifecycle = lifecycle
        self.errors = errors = ErrorPolicy(settings, outbox, lifecycle, login.report, counters)
        self._controls = controls = ControlMessages(
            settings, directory, outbox, login, cluster, counters
        )
        self.checks = Registrations(
            self._sessions, login, controls, admission, lifecycle, errors, counters, self._route
        )
        self._timers = Timers(settings, self._sessions, outbox, errors, login)

    def open(
        self, peer: str, address: str, now: float, sink: Sink, framing: Framing | None = None
    ) -> Session:
        """A new connection from `address` ("host:port" is `peer`, for logs). `framing` None:
        detect it from the first byte (TCP); else the connection's own (WebSocket)."""
        return self._lifecycle.open(peer, address, now, sink, framing)

    def receive(self, session: Session, data: bytes, now: float) -> float:
        """Handle bytes read from `session`'s connection; return how long to stop reading from
        it: 0.0 read on; seconds (a spent rate budget); `WAIT_FOR_CHECK` (a register's check)."""
        if not session.accepts_input:
            return 0.0
        counters = self._counters
        session.last_seen = now
        counters.bytes_in += len(data)
        try:
            packets = session.decoder.feed(data)
        except RemoteError as error:
            session.note_framing()
            self.errors.refuse(session, error, now)
            return 0.0
        if session.mailbox.framing is None:
            session.note_framing()
        if session.refusal is not None:  # now its framing is known: tell it, and close
            self.errors.refuse(session, session.refusal, now)
            return 0.0
        if not packets:
            return WAIT_FOR_CHECK if session.checking else 0.0
        counters.packets_in += len(packets)
        pause = 0.0
        budget = session.budget
        if budget is not None:
            # Everything this read brought is routed; it is the *next* read that waits.
            pause = budget.spend(len(packets), len(data), now)
            if pause:
                session.paused_until = now + pause
                self.errors.rate_paused(session, budget)
        if session.checking:  # its register is still being checked
            self.checks.hold(session, packets)
            return WAIT_FOR_CHECK
        if session.state is REGISTERED:
            user = session.user
            assert user is not None
            user.packets_sent += len(packets)
            user.bytes_sent += len(data)
            self._route(session, packets, now)
        else:
            self._before_register(session, packets, now)
            pause = max(pause, self.checks.finish_ran(now))  # checks that ran at once
        return WAIT_FOR_CHECK if session.checking else pause

    def tick(self, now: float) -> None:
        """Once a second: timeouts, close grace, episodes, the login report (`timers`)."""
        self._timers.tick(now)

    def close(self, session: Session, now: float) -> None:
        """The connection is gone (closed by either side): leave the group, forget it."""
        self._lifecycle.gone(session, now)

    def shutdown(self, now: float) -> None:
        """The router is stopping: every client is told, then closed at the next flush."""
        self._lifecycle.shutdown(now)

    def set_limits(self, limits: Limits, now: float) -> None:
        """A reload's limits, without dropping anyone (see `Lifecycle.set_limits`)."""
        self._admission.limits = limits
        self.login.set_limits(limits)
        self._lifecycle.set_limits(limits, now)

    def set_wall_clock(self, offset: float) -> None:
        """Unix time is `now + offset`, for the time service (told every tick: NTP steps)."""
        self._settings.wall_clock_offset = offset

    @property
    def has_output(self) -> bool:
        return self._outbox.has_pending

    def flush(self) -> None:
        """Write what is queued; close or reset the connections the hub gave up on."""
        self._outbox.flush()

    def statistics(self) -> HubStatistics:
        return snapshot(self._counters, self._outbox, self._sessions.values(), self.directory)

    # -- the packet loop: the hot path -----------------------------------------------------

    def _route(self, session: Session, packets: Sequence[bytes | InvalidFrame], now: float) -> None:
        """The packet loop of a registered connection."""
        # Consecutive packets to broadcast are delivered together (see Outbox.deliver_run):
        # `run` collects them until something else comes, or the read ends.
        run: list[bytes] = []
        for packet in packets:
            if packet.__class__ is not bytes:
                assert isinstance(packet, InvalidFrame)
                self._broadcast(session, run)
                error = RemoteError(ErrorCode.PACKET_INVALID, packet.detail)
                self.errors.refuse(session, error, now)
            else:
                assert isinstance(packet, bytes)
                try:
                    has_control = validate_packet(packet)
                except RemoteError as error:
                    self._broadcast(session, run)
                    self.errors.refuse(session, error, now)
                else:
                    if not has_control:
                        run.append(packet)
                        continue
                    self._broadcast(session, run)
                    self._packet(session, packet, has_control, now)
            if not session.accepts_input:
                return
        self._broadcast(session, run)

    def _before_register(
        self, session: Session, packets: list[bytes | InvalidFrame], now: float
    ) -> None:
        """The packets of a connection that has not registered: the first must be a register;
        once its check has started, the rest wait for the outcome."""
        for index, packet in enumerate(packets):
            if not isinstance(packet, bytes):
                error = RemoteError(ErrorCode.PACKET_INVALID, packet.detail)
                self.errors.refuse(session, error, now)
                return
            try:
                has_control = validate_packet(packet)
            except RemoteError as error:
                self.errors.refuse(session, error, now)
                return
            self._packet(session, packet, has_control, now)
            if not session.accepts_input:
                return
            if session.checking:
                self.checks.hold(session, packets[index + 1 :])
                return

    def _packet(self, session: Session, packet: bytes, has_control: bool, now: float) -> None:
        """A valid packet that is not simply broadcast: a control message, a bundle holding
        some, or anything from a connection that has not registered."""
        if not has_control:
            self.errors.refuse(session, not_registered(packet), now)
        elif packet[0] == 0x2F:  # '/': a control message on its own
            self._control(session, packet, now)
        else:
            # A bundle that holds control messages: act on them in order, then forward the rest.
            controls, rest = split_bundle_controls(packet)
            for index, control in enumerate(controls):
                self._control(session, control, now)
                if not session.accepts_input:
                    return
                if session.checking:
                    # A register: what follows it waits as if each control message had come
                    # alone, and the rest of the bundle after them.
                    held = controls[index + 1 :] + ([] if rest is None else [rest])
                    self.checks.hold(session, held)
                    return
            if rest is not None and session.state is REGISTERED:
                self._broadcast(session, [rest])

    def _broadcast(self, session: Session, run: list[bytes]) -> None:
        """Deliver `run` (packets of a registered session, in order) to the rest of its group;
        empty `run` afterwards."""
        if not run:
            return
        user = session.user
        assert user is not None
        receivers = user.receivers()
        if receivers:
            if self._settings.log_messages:
                who, count = session.describe(), len(receivers)
                for packet in run:
                    log.debug("%s -> %d: %s", who, count, packet_summary(packet))
            self._outbox.deliver_run(receivers, run)
        if user.group.remote_users:
            elsewhere = self.cluster.elsewhere
            if elsewhere is not None:
                elsewhere.broadcast(user.group.name, user.name, run[:])
        run.clear()

    def _control(self, session: Session, message: bytes, now: float) -> None:
        try:
            check = self._controls.handle(session, message, now)
        except RemoteError as error:
            self.errors.refuse(session, error, now)
            return
        if check is not None:
            self.checks.start(session, check)
