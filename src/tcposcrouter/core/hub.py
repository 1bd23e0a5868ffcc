"""The router as a pure object: bytes in from connections, decisions and bytes out.

The shell calls `open`, `receive` with every chunk read, `checked` with a register's password
check it ran, `tick` once a second, `gone` when a connection is gone and `flush` once per loop
turn while `has_output`, passing the time to each. The packet loop (receive, route, broadcast)
is here and only here; a register is core/register.py's from its message to its reply, and the
hub routes what waited behind it. The cold paths are parts with one job each, reached as
attributes: `registers` (the checks the shell runs), `errors` (the error policy), `cluster`
(the port to other nodes) and `directory` (docs/architecture.md).
Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from ..errors import ErrorCode, RemoteError
from ..osc.framing import Framing, InvalidFrame
from ..osc.messages import REGISTER, packet_summary
from ..osc.resume import RESUME_PREFIX
from ..osc.validate import split_bundle_controls, validate_packet
from .admission import Admission
from .control import ControlMessages, not_registered
from .directory import Directory, announce_changes, tell_user_list
from .elsewhere import ClusterPort
from .lifecycle import Lifecycle
from .login_report import LoginReport
from .outbox import Outbox, Sink
from .policy import ErrorPolicy
from .register import PasswordCheck, Registers
from .session import Session, SessionState
from .settings import RouterSettings, Settings
from .statistics import Counters, HubStatistics, snapshot

__all__ = ["WAIT_FOR_CHECK", "Hub", "RouterSettings"]

log = logging.getLogger("tcposcrouter.hub")

# What `Hub.receive` and `Hub.checked` return while a register's passwords are being checked:
# stop reading until `checked` says otherwise.
WAIT_FOR_CHECK = math.inf

REFUSED = SessionState.REFUSED
REGISTERING, REGISTERED = SessionState.REGISTERING, SessionState.REGISTERED


class Hub:
    def __init__(self, config: RouterSettings) -> None:
        """A hub made with the router's configuration (server/config.py's ServerConfig)."""
        self._settings = settings = Settings(config.limits, config.log_messages)
        self._sessions: dict[int, Session] = {}
        self._counters = counters = Counters()
        self._outbox = outbox = Outbox()
        self._admission = admission = Admission(config.limits)
        self.directory = directory = Directory()
        directory.apply_rules(config.group_rules)
        sessions = self._sessions
        lifecycle = Lifecycle(settings, sessions, directory, outbox, admission, counters)
        self._lifecycle = lifecycle
        report = LoginReport()
        self.errors = errors = ErrorPolicy(settings, sessions, outbox, lifecycle, report, counters)
        self.registers = registers = Registers(
            settings, sessions, directory, outbox, admission, lifecycle, errors, report, counters
        )
        self.cluster = cluster = ClusterPort(directory, outbox, registers, counters, settings)
        self._controls = ControlMessages(settings, outbox, cluster, lifecycle.resumes)

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
            self._lifecycle.note_framing(session)
            self.errors.refuse(session, error, now)
            return 0.0
        if session.mailbox.framing is None:
            self._lifecycle.note_framing(session)
        state = session.state
        if state is REFUSED:  # now its framing is known: tell it, and close
            assert session.refusal is not None
            self.errors.refuse(session, session.refusal, now)
            return 0.0
        if not packets:
            return WAIT_FOR_CHECK if state is REGISTERING else 0.0
        counters.packets_in += len(packets)
        pause = 0.0
        budget = session.budget
        if budget is not None:
            # Everything this read brought is routed; it is the *next* read that waits.
            pause = budget.spend(len(packets), len(data), now)
            if pause:
                session.paused_until = now + pause
                self.errors.rate_paused(session, budget)
        if state is REGISTERED:
            user = session.user
            assert user is not None
            user.packets_sent += len(packets)
            user.bytes_sent += len(data)
            self._route(session, packets, now)
        elif state is REGISTERING:  # its register is still being checked
            self.registers.hold(session, packets)
            return WAIT_FOR_CHECK
        else:
            self._before_register(session, packets, now)
            check = self.registers.take_ran()
            if check is not None:  # its check ran at once: finish it in this read
                return max(pause, self.checked(check, now))
        return WAIT_FOR_CHECK if session.state is REGISTERING else pause

    def checked(self, check: PasswordCheck, now: float) -> float:
        """A register's password check has run: finish the register (core/register.py), then
        route what its connection sent meanwhile. Return how long to stop reading from that
        connection, as `receive` does."""
        session = check.session
        held = self.registers.finish(check, now)
        if held:
            # The others learn of the newcomer before they hear what it sent.
            assert session.user is not None
            group = session.user.group
            tell_user_list(self._outbox, group, group.mailboxes())
            self._route(session, held, now)
        if session.state is REGISTERING:  # checked again: the group changed meanwhile
            return WAIT_FOR_CHECK
        if not session.accepts_input:
            return 0.0
        return max(0.0, session.paused_until - now)

    def tick(self, now: float) -> None:
        """Once a second: timeouts, close grace, episodes (`errors`), the login report and the
        throttle's old records (`registers`), held places whose time is over."""
        self.errors.tick(now)
        self.registers.tick(now)
        self._lifecycle.tick(now)

    def gone(self, session: Session, now: float) -> None:
        """The connection is gone (ended by either side): leave the group, forget it."""
        self.errors.gone(session, now)
        self._lifecycle.gone(session, now)

    def shutdown(self, now: float) -> None:
        """The router is stopping: every client is told, then closed at the next flush."""
        self._lifecycle.shutdown(now)

    def reconfigure(self, config: RouterSettings, now: float) -> None:
        """A reload's configuration, without dropping anyone: its limits (see
        `Lifecycle.set_limits`) and its pinned groups (see `Directory.apply_rules`)."""
        limits = config.limits
        if limits != self._settings.limits:
            self._admission.limits = limits
            self.registers.set_limits(limits)
            self._lifecycle.set_limits(limits, now)
        self.directory.apply_rules(config.group_rules)

    def set_wall_clock(self, offset: float) -> None:
        """Unix time is `now + offset`, for the time service (told every tick: NTP steps)."""
        self._settings.wall_clock_offset = offset

    @property
    def has_output(self) -> bool:
        return self._outbox.has_pending or bool(self.directory.changed)

    def flush(self) -> None:
        """Tell the user lists that changed this turn; write what is queued; close or reset
        the connections the hub gave up on."""
        if self.directory.changed:
            announce_changes(self._outbox, self.directory)
        self._outbox.flush()

    def statistics(self) -> HubStatistics:
        return snapshot(self._counters, self._outbox, self._lifecycle.by_framing, self.directory)

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
        """The packets of a connection that has not registered: the first must be a register
        (or a resume; `/oscrouter/info` may come before either); once a register's check has
        started, the rest wait for the outcome; after a resume, they are a member's."""
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
            if session.state is REGISTERING:
                self.registers.hold(session, packets[index + 1 :])
                return
            if session.state is REGISTERED:  # a resume took a kept place: a member's from here
                self._route(session, packets[index + 1 :], now)
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
                if session.state is REGISTERING:
                    # A register: what follows it waits as if each control message had come
                    # alone, and the rest of the bundle after them.
                    held = controls[index + 1 :] + ([] if rest is None else [rest])
                    self.registers.hold(session, held)
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
            if message.startswith(REGISTER):
                self.registers.begin(session, message, now)
            elif message.startswith(RESUME_PREFIX) and session.state is SessionState.NEW:
                self._lifecycle.resume(session, message, now)
            else:
                self._controls.handle(session, message, now)
        except RemoteError as error:
            self.errors.refuse(session, error, now)
