"""The router as a pure object: bytes in from connections, decisions and bytes out.

The shell calls `open` on connect (with the `Sink` its connection writes to), `receive` with
every chunk of bytes read (for WebSocket: every message), `tick` about once a second, and
`close` when a connection is gone, passing the time (`now`, seconds on a monotonic clock) to
each. Whenever `has_output` is true it calls `flush()` once per turn of its event loop: the
outbox then writes each connection's queue with one `Sink.write` and closes or resets the
connections the hub gave up on. The hub never touches a socket; the shell never changes the
hub's state except through these calls.

Two things the hub asks of the shell in return. `receive` returns how long to stop reading from
that connection: some seconds when it sent more than its rate budget (backpressure instead of
drops, see `rates`), or `WAIT_FOR_CHECK` while its register's passwords are being checked. And
`take_password_checks` hands over the checks to run (`PasswordCheck.run`, scrypt) in a worker
thread; each finished one goes back through `password_checked`, which again says how long to
stop reading (0: read on).

Packets from elsewhere (another node, in cluster mode) enter through `deliver_from_elsewhere`
and `deliver_private_from_elsewhere` under the same rules as local ones; what must go elsewhere
(packets to a group with users present on other nodes) leaves through the `Elsewhere` given to
`set_elsewhere`; `subscribe` tells an edge who joins and leaves, `subscribe_login_failures`
which logins failed, and `login_failed_elsewhere` counts another node's failures here.

Everything docs/protocol.md §3 and §4 decide is here (the packet loop, broadcast, the error
policy) or in the parts it delegates to: `admission` (connection caps), `control` (register,
private, ping), `login` (register checks, throttle), `directory` (groups, users, receivers),
`rates` (rate budgets), `session` (states, timeouts), `outbox` (framing, queues, byte limits).

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.framing import Framing, InvalidFrame
from ..osc.messages import error_message, message_address
from ..osc.validate import split_bundle_controls, validate_packet
from .admission import Admission
from .auth import PasswordHash
from .control import ControlMessages, announce_members, not_registered
from .directory import Directory, MembershipEvent, User
from .login import PasswordCheck
from .outbox import Ending, Outbox, Sink
from .pinned import GroupRules
from .rates import RateBudget
from .session import ErrorEpisode, Session, SessionState, overdue
from .statistics import Counters, HubStatistics, snapshot

__all__ = ["PRE_REGISTER_MAX_PACKET_SIZE", "WAIT_FOR_CHECK", "Elsewhere", "Hub", "HubConfig"]

log = logging.getLogger("tcposcrouter.hub")

# Largest packet accepted before a connection has registered. A register is well under 1 KB;
# keeping strangers to 16 KiB means 10,000 half-open connections hold at most 320 MiB of partial
# frames (SLIP counts double), however large the limit for members is.
PRE_REGISTER_MAX_PACKET_SIZE = 16 * 1024

# What `receive` and `password_checked` return while a register's passwords are being checked:
# stop reading until `password_checked` says otherwise.
WAIT_FOR_CHECK = math.inf

# An episode of one repeated error on one connection ends after this many quiet seconds; its
# repeats are then logged as one line with their count.
ERROR_EPISODE_SECONDS = 10.0

NEW, REGISTERED, CLOSING, CLOSED = (
    SessionState.NEW,
    SessionState.REGISTERED,
    SessionState.CLOSING,
    SessionState.CLOSED,
)


class Elsewhere(Protocol):
    """Where packets for users on other nodes go (cluster/node.py). Called on the hot path,
    in the order the packets are routed here; it must only queue them."""

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None: ...

    def private(self, group: str, target: str, message: bytes) -> None: ...


@dataclass(frozen=True)
class HubConfig:
    limits: Limits = field(default_factory=Limits)
    # Write the address and size of every routed packet to the debug log. Off by default: message
    # contents are the musicians' business, and logging per packet costs more than routing it.
    log_messages: bool = False


class Hub:
    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig()
        self.limits = limits = self.config.limits
        self.directory = Directory()
        self.outbox = Outbox()
        self._admission = Admission(limits)
        self._counters = Counters()
        self._controls = ControlMessages(
            limits, self.directory, self.outbox, self._counters, self.config.log_messages
        )
        self._sessions: dict[int, Session] = {}
        self._next_id = 1
        self._rate_limited = RateBudget.needed(limits)
        self._checks: list[PasswordCheck] = []
        self._now = 0.0  # the time of the current call, for what it logs
        self._elsewhere: Elsewhere | None = None

    # -- the shell's entry points ----------------------------------------------------------

    def open(
        self, peer: str, address: str, now: float, sink: Sink, framing: Framing | None = None
    ) -> Session:
        """A new connection from `address` ("host:port" is `peer`, for logs). `framing` None:
        detect it from the first byte (TCP); else the connection's own (WebSocket)."""
        self._now = now
        session_id = self._next_id
        self._next_id += 1
        max_size = min(self.limits.max_packet_size, PRE_REGISTER_MAX_PACKET_SIZE)
        mailbox = self.outbox.mailbox(sink, framing, session_id)
        session = Session.open(session_id, peer, address, now, mailbox, max_size)
        session.refusal, evicted = self._admission.admit(session)
        for old in evicted:
            self._make_room(old, now)
        if self._rate_limited:
            session.budget = RateBudget(self.limits, now)
        self._sessions[session_id] = session
        self._counters.connections_opened += 1
        return session

    def receive(self, session: Session, data: bytes, now: float) -> float:
        """Handle bytes read from `session`'s connection. Return how long the shell must stop
        reading from it: 0.0 read on; seconds (its rate budget is spent); `WAIT_FOR_CHECK`."""
        if not session.accepts_input:
            return 0.0
        self._now = now
        counters = self._counters
        session.last_seen = now
        counters.bytes_in += len(data)
        try:
            packets = session.decoder.feed(data)
        except RemoteError as error:
            session.note_framing()
            self._refuse(session, error)
            return 0.0
        if session.mailbox.framing is None:
            session.note_framing()
        if session.refusal is not None:  # now its framing is known: tell it, and close
            self._refuse(session, session.refusal)
            return 0.0
        if not packets:
            return WAIT_FOR_CHECK if session.check is not None else 0.0
        counters.packets_in += len(packets)
        pause = 0.0
        budget = session.budget
        if budget is not None:
            # Everything this read brought is routed; it is the *next* read that waits.
            pause = budget.spend(len(packets), len(data), now)
            if pause:
                session.paused_until = now + pause
                self._rate_pause(session, budget)
        if session.check is not None:  # its register is still being checked
            self._hold(session, packets)
            return WAIT_FOR_CHECK
        if session.state is REGISTERED:
            user = session.user
            assert user is not None
            user.packets_sent += len(packets)
            user.bytes_sent += len(data)
            self._route(session, packets)
        else:
            self._before_register(session, packets, now)
        return WAIT_FOR_CHECK if session.check is not None else pause

    def set_limits(self, limits: Limits, now: float) -> None:
        """Enforce `limits` from now on (a reload), without dropping anyone: a cap lowered
        below what is connected refuses newcomers only; every connection's rate budget starts
        afresh (full) at the new rates; registered connections take the new packet size."""
        self.limits = limits
        self.config = dataclasses.replace(self.config, limits=limits)
        self._admission.limits = limits
        self._controls.set_limits(limits)
        self._rate_limited = RateBudget.needed(limits)
        for session in self._sessions.values():
            session.budget = RateBudget(limits, now) if self._rate_limited else None
            if session.state is REGISTERED:
                session.decoder.set_max_packet_size(limits.max_packet_size)

    def set_group_rules(self, rules: GroupRules) -> None:
        """Pin the groups `rules` names, unpin the others, open or close the router to new
        groups (at start-up and on a reload). Nobody connected is dropped; see
        `Directory.apply_rules`."""
        self.directory.apply_rules(rules)

    def set_wall_clock(self, offset: float) -> None:
        """Unix time is `now + offset`: the shell tells the hub (at start and every tick, so
        that a clock stepped by NTP is followed), for the time service's replies."""
        self._controls.wall_clock_offset = offset

    def claim_group_page(
        self, address: str, group_name: str, now: float
    ) -> tuple[float, PasswordHash | None]:
        """Someone at `address` asks for `group_name`'s dashboard page with its password.
        Return the seconds they must wait first (throttled like a register, at an account of
        its own: guessing there slows nobody's login), or 0 and the hash to check the password
        against in a worker thread, then `group_page_checked` (None: no such group; counted as
        a wrong password, so the page does not tell which groups exist)."""
        throttle = self._controls.login.throttle
        account = (group_name, "")
        wait = throttle.claim(address, account, now)
        if wait:
            return wait, None
        group = self.directory.groups.get(group_name)
        password = None if group is None else group.password
        if password is None:
            throttle.failed(address, account, now)
        return 0.0, password

    def group_page_checked(self, address: str, group_name: str, right: bool, now: float) -> None:
        throttle = self._controls.login.throttle
        if right:
            throttle.succeeded(address, (group_name, ""), now)
        else:
            throttle.failed(address, (group_name, ""), now)

    @property
    def has_password_checks(self) -> bool:
        return bool(self._checks)

    def take_password_checks(self) -> list[PasswordCheck]:
        """The password checks to run, each once, in a worker thread: call `run()`, then
        `password_checked` with it."""
        checks, self._checks = self._checks, []
        return checks

    def password_checked(self, check: PasswordCheck, now: float) -> float:
        """A check from `take_password_checks` has run: register its connection, or refuse it.
        Return how long to stop reading from that connection, as `receive` does."""
        self._now = now
        session = check.session
        login = self._controls.login
        # A refusal ends the session, and ending (or closing) it forgets its check and what
        # waited behind it.
        try:
            joining = login.complete(check, now)
        except RemoteError as error:
            self._refuse(session, error)
            return 0.0
        if not session.accepts_input:  # closed while its check ran
            return 0.0
        if joining is None:  # others changed the group meanwhile: check against what is there
            self._counters.checks_repeated += 1
            try:
                self._start_check(session, login.prepare(session, check.request, now))
            except RemoteError as error:
                self._refuse(session, error)
                return 0.0
            return WAIT_FOR_CHECK
        session.check = None
        held, session.held = session.held, None
        twin = None
        if not self._admission.room_for_member(session.address):
            twin = _silent_twin(session, joining.user)
            if twin is None:
                detail = (
                    f"{self._admission.members_from(session.address)} registered connections "
                    "from your address"
                )
                self._refuse(session, RemoteError(ErrorCode.SERVER_FULL, detail, fatal=True))
                return 0.0
        self._admission.registered(session)
        self._controls.join(session, check.request, joining)
        if twin is not None:  # after the join, so that the user itself never leaves
            self._counters.replaced += 1
            self._end(twin, Ending.CLOSE, "a newer connection of the same user took its place")
        if held:
            self._route(session, held)
        if session.check is not None:
            return WAIT_FOR_CHECK
        return max(0.0, session.paused_until - now)

    def tick(self, now: float) -> None:
        """Once a second: timeouts, closes that took too long, the ends of error episodes and
        rate-limit episodes, and the login report."""
        self._now = now
        limits = self.limits
        grace = limits.close_grace
        for session in list(self._sessions.values()):
            state = session.state
            if state is CLOSING:
                if grace and now - session.closing_since >= grace:
                    self.outbox.reset(session.mailbox)
                continue
            reason = overdue(session, limits, now)
            if reason is not None:
                self._refuse(session, reason)
                continue
            if session.quiet is not None:
                self._end_error_episodes(session, now, ERROR_EPISODE_SECONDS)
            budget = session.budget
            if budget is not None and budget.episode_pauses:
                pauses, seconds = budget.episode_pauses, budget.episode_seconds
                if budget.episode_over(now):
                    log.info(
                        "%s is within its rate budget again: reading paused %d times, %.1f s",
                        session.describe(),
                        pauses,
                        seconds,
                    )
        login = self._controls.login
        for line in login.report.due(now):
            log.warning("%s", line)
        login.throttle.forget_old(now)

    def slow_consumer(self, session: Session, buffered: int) -> None:
        """The shell saw more than `max_output_buffer` bytes waiting for `session`: reset it at
        once, without waiting for its buffer to drain (that is what it cannot do). Its error
        reply would only queue behind what it does not read, so it gets none; the log line and
        the counter say what happened."""
        if not session.accepts_input:
            return
        self._counters.slow_consumer_resets += 1
        self._counters.count(self._counters.errors, ErrorCode.SLOW_CONSUMER)
        limit = self.limits.max_output_buffer
        log.info(
            "error %s: %s: %d bytes waiting to be read, more than the limit of %d",
            session.describe(),
            ErrorCode.SLOW_CONSUMER,
            buffered,
            limit,
        )
        self._end(session, Ending.RESET, ErrorCode.SLOW_CONSUMER)

    def reject(self, session: Session, error: RemoteError) -> None:
        """The shell found `error` in what `session` sent (a WebSocket text message, which is
        no OSC packet): answer and count it as the hub's own errors are."""
        self._refuse(session, error)

    def count_error(self, session: Session, code: str, detail: str) -> None:
        """The shell's transport refused what `session` sent and closes the connection itself
        (a WebSocket frame too large or broken): count and log it; nothing can be sent."""
        if not session.accepts_input:
            return
        self._counters.count(self._counters.errors, code)
        log.info("error %s: %s: %s", session.describe(), code, detail)

    def shutdown(self) -> None:
        """The router is stopping: tell every client (`server_shutdown`, after what is queued
        for it) and close every connection at the next flush. Nobody's leaving is announced:
        everybody leaves."""
        goodbye = error_message(
            ErrorCode.SERVER_SHUTDOWN, "the router is shutting down; connect again later"
        )
        for session in self._sessions.values():
            if not session.accepts_input:
                continue
            self.outbox.send(session.mailbox, goodbye)
            self._admission.release(session)
            self.directory.leave(session)
            session.move_to(CLOSING)
            session.closing_since = self._now
            self.outbox.end(session.mailbox, Ending.CLOSE)

    def close(self, session: Session) -> None:
        """The connection is gone (closed by either side): leave the group, forget it."""
        if session.state is CLOSED:
            return
        del self._sessions[session.id]
        self._admission.release(session)
        self._counters.connections_closed += 1
        if session.quiet is not None:
            self._end_error_episodes(session, self._now, 0.0)
        if session.state is REGISTERED:
            log.info("leave %s", session.describe())
            self._leave(session)
        elif session.user is None:
            log.debug("disconnect %s (never registered)", session.describe())
        session.check = session.held = None
        session.move_to(CLOSED)
        self.outbox.discard(session.mailbox)

    def deliver_from_elsewhere(self, group_name: str, sender: str, packet: bytes) -> int:
        """Deliver `packet`, sent by user `sender` of `group_name` on another node, to the
        group's connections here: every user but `sender`, in the order of the calls (so one
        sender's packets keep their order). Return how many connections it went to."""
        group = self.directory.groups.get(group_name)
        if group is None:
            return 0
        self._counters.packets_from_elsewhere += 1
        try:
            if validate_packet(packet):  # checked where it arrived; a broken edge must not
                raise RemoteError(ErrorCode.UNKNOWN_COMMAND, "router message from elsewhere")
        except RemoteError as error:
            self._counters.count(self._counters.drops, error.code)
            log.warning("dropped a packet from elsewhere for %s: %s", group_name, error)
            return 0
        user = group.users.get(sender)
        receivers = user.receivers() if user is not None else group.mailboxes()
        self.outbox.deliver(receivers, packet)
        return len(receivers)

    def deliver_private_from_elsewhere(self, group_name: str, target: str, message: bytes) -> int:
        """Deliver a private message (already rewritten to name its sender, see
        `PrivateRequest.as_sent_by`) from another node to `target`'s connections here."""
        group = self.directory.groups.get(group_name)
        user = None if group is None else group.users.get(target)
        if user is None or not user.sessions:
            return 0
        self._counters.packets_from_elsewhere += 1
        try:
            validate_packet(message)
        except RemoteError as error:
            self._counters.count(self._counters.drops, error.code)
            log.warning("dropped a private message from elsewhere for %s: %s", group_name, error)
            return 0
        boxes = user.mailboxes()
        self.outbox.deliver(boxes, message)
        return len(boxes)

    def set_elsewhere(self, elsewhere: Elsewhere | None) -> None:
        """Send what users on other nodes must get through `elsewhere` (None: nowhere)."""
        self._elsewhere = elsewhere
        self._controls.elsewhere = elsewhere

    def subscribe_login_failures(self, listener: Callable[[str, str, str], None]) -> None:
        """Call `listener(address, group, user)` for every failed password check here."""
        self._controls.login.failure_listeners.append(listener)

    def login_failed_elsewhere(self, address: str, group: str, user: str, now: float) -> None:
        """Another node saw a failed login from `address` at `user` in `group`: the throttle
        here counts it as its own, so that guessing across nodes is slowed as on one."""
        self._controls.login.throttle.record_failure(address, (group, user), now)

    def check_refused(self, check: PasswordCheck, error: RemoteError, now: float) -> None:
        """The shell could not finish `check` (in cluster mode: the store is unavailable):
        refuse its connection with `error`; no password was wrong, so nothing is counted."""
        self._now = now
        self._controls.login.release(check, now)
        self._refuse(check.session, error)

    def remote_joined(self, group_name: str, user_name: str) -> None:
        """`user_name` is in `group_name` on another node: it is in the user list here too."""
        group = self.directory.add_remote(group_name, user_name)
        if group is not None:
            announce_members(self.outbox, group)

    def remote_left(self, group_name: str, user_name: str) -> None:
        group = self.directory.remove_remote(group_name, user_name)
        if group is not None:
            announce_members(self.outbox, group)

    def subscribe(self, listener: Callable[[MembershipEvent], None]) -> None:
        """Call `listener` with every join and leave of a user here."""
        self.directory.subscribe(listener)

    @property
    def has_output(self) -> bool:
        return self.outbox.has_pending

    def flush(self) -> None:
        """Write what is queued; close or reset the connections the hub gave up on."""
        self.outbox.flush()

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    @property
    def admission(self) -> Admission:
        return self._admission

    def statistics(self) -> HubStatistics:
        return snapshot(self._counters, self.outbox, self._sessions.values(), self.directory)

    # -- packets ---------------------------------------------------------------------------

    def _route(self, session: Session, packets: Sequence[bytes | InvalidFrame]) -> None:
        """The packet loop of a registered connection: the hot path."""
        # Consecutive packets to broadcast are delivered together (see Outbox.deliver_run):
        # `run` collects them until something else comes, or the read ends.
        run: list[bytes] = []
        for packet in packets:
            if packet.__class__ is not bytes:
                assert isinstance(packet, InvalidFrame)
                self._broadcast(session, run)
                self._refuse(session, RemoteError(ErrorCode.PACKET_INVALID, packet.detail))
            else:
                assert isinstance(packet, bytes)
                try:
                    has_control = validate_packet(packet)
                except RemoteError as error:
                    self._broadcast(session, run)
                    self._refuse(session, error)
                else:
                    if not has_control:
                        run.append(packet)
                        continue
                    self._broadcast(session, run)
                    self._packet(session, packet, has_control, self._now)
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
                self._refuse(session, RemoteError(ErrorCode.PACKET_INVALID, packet.detail))
                return
            try:
                has_control = validate_packet(packet)
            except RemoteError as error:
                self._refuse(session, error)
                return
            self._packet(session, packet, has_control, now)
            if not session.accepts_input:
                return
            if session.check is not None:
                self._hold(session, packets[index + 1 :])
                return

    def _packet(self, session: Session, packet: bytes, has_control: bool, now: float) -> None:
        """A valid packet that is not simply broadcast: a control message, a bundle holding
        some, or anything from a connection that has not registered."""
        if not has_control:
            self._refuse(session, not_registered(packet))
        elif packet[0] == 0x2F:  # '/': a control message on its own
            self._control(session, packet, now)
        else:
            # A bundle that holds control messages: act on them in order, then forward the rest.
            controls, rest = split_bundle_controls(packet)
            for index, control in enumerate(controls):
                self._control(session, control, now)
                if not session.accepts_input:
                    return
                if session.check is not None:
                    # A register: what follows it waits as if each control message had come
                    # alone, and the rest of the bundle after them.
                    self._hold(session, controls[index + 1 :] + ([] if rest is None else [rest]))
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
            if self.config.log_messages:
                for packet in run:
                    log.debug("%s -> %d: %s", session.describe(), len(receivers), _summary(packet))
            self.outbox.deliver_run(receivers, run)
        if user.group.remote_users and self._elsewhere is not None:
            self._elsewhere.broadcast(user.group.name, user.name, run[:])
        run.clear()

    def _control(self, session: Session, message: bytes, now: float) -> None:
        try:
            check = self._controls.handle(session, message, now)
        except RemoteError as error:
            self._refuse(session, error)
            return
        if check is not None:
            self._start_check(session, check)

    def _hold(self, session: Session, later: Sequence[bytes | InvalidFrame]) -> None:
        """What came after a register whose check has started waits for its outcome, in order."""
        held = session.held
        assert held is not None
        held.extend(later)

    def _start_check(self, session: Session, check: PasswordCheck) -> None:
        session.check = check
        if session.held is None:
            session.held = []
        self._admission.checking(session)
        self._counters.password_checks += 1
        self._checks.append(check)

    def _rate_pause(self, session: Session, budget: RateBudget) -> None:
        """The connection spent more than its budget: count the pause; the first of an episode
        is logged and, for a member, answered (once, not per pause)."""
        self._counters.rate_limit_pauses += 1
        if budget.episode_pauses == 1:
            notice = RateBudget.notice(self.limits)
            log.info("%s: %s", session.describe(), notice)
            if session.state is REGISTERED:
                self._counters.count(self._counters.errors, notice.code)
                self.outbox.send(session.mailbox, error_message(notice.code, notice.detail))

    # -- errors and endings ----------------------------------------------------------------

    def _refuse(self, session: Session, error: RemoteError) -> None:
        """Send the error reply; close the connection when the error, or the state, says so."""
        if not session.accepts_input:
            return  # already given up on: nothing more to say
        counters = self._counters
        code = error.code
        counters.count(counters.errors, code)
        if code == ErrorCode.PACKET_INVALID:
            counters.count(counters.drops, code)
        if session.state is NEW and code in _LOGIN_ERRORS:
            counters.count(counters.refusals, code)
            self._log_refusal(session, error)
        elif error.fatal or session.state is not REGISTERED:
            log.info("error %s: %s: %s", session.describe(), code, error.detail)
        else:
            self._log_repeatable(session, error)
        # A client that never spoke has shown no framing: it gets no reply (send() skips it).
        self.outbox.send(session.mailbox, error_message(code, error.detail))
        if error.fatal or session.state is not REGISTERED:
            self._end(session, Ending.CLOSE, code)

    def _log_refusal(self, session: Session, error: RemoteError) -> None:
        # Failed and throttled logins are summarised per address and minute (Login.report,
        # logged by tick); only the first of an address in its minute gets a line of its own.
        if error.code not in _REPORTED or self._controls.login.report.first(session.address):
            log.info("register refused %s: %s: %s", session.describe(), error.code, error.detail)

    def _log_repeatable(self, session: Session, error: RemoteError) -> None:
        """A non-fatal error of a member: its first in an episode is logged, repeats counted."""
        quiet = session.quiet
        if quiet is None:
            quiet = session.quiet = {}
        episode = quiet.get(error.code)
        now = self._now
        if episode is None:
            quiet[error.code] = ErrorEpisode(now)
            log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
        else:
            episode.count += 1
            episode.last = now

    def _end_error_episodes(self, session: Session, now: float, quiet_for: float) -> None:
        quiet = session.quiet
        assert quiet is not None
        for code, episode in list(quiet.items()):
            if now - episode.last >= quiet_for:
                del quiet[code]
                if episode.count:
                    log.info(
                        "error %s: %s %d more times in %.0f s",
                        session.describe(),
                        code,
                        episode.count,
                        episode.last - episode.first,
                    )
        if not quiet:
            session.quiet = None

    def _end(self, session: Session, ending: Ending, reason: str) -> None:
        """The router gives up on `session`: it leaves its group now, and its connection is
        closed (or reset) at the next flush; a close that has not finished `close_grace`
        seconds later is turned into a reset by `tick`."""
        was_registered = session.state is REGISTERED
        session.move_to(CLOSING)
        session.closing_since = self._now
        session.check = session.held = None
        self._admission.release(session)
        if was_registered:
            self._leave(session)
        self.outbox.end(session.mailbox, ending)
        verb = "closing" if ending is Ending.CLOSE else "resetting"
        log.info("%s %s after %s", verb, session.describe(), reason)

    def _make_room(self, session: Session, now: float) -> None:
        """Close a connection that has not registered, to admit a newer one."""
        self._counters.made_room += 1
        detail = (
            f"closed to make room for newer connections: not registered after "
            f"{now - session.opened_at:.1f} s"
        )
        self.outbox.send(session.mailbox, error_message(ErrorCode.SERVER_FULL, detail))
        self._end(session, Ending.CLOSE, "making room for a newer connection")

    def _leave(self, session: Session) -> None:
        group = self.directory.leave(session)
        if group is not None:
            announce_members(self.outbox, group)
        elif session.user is not None:
            emptied = session.user.group
            if emptied.pinned is None:
                log.info("group %s removed: nobody left in it", emptied.name)
            else:
                log.info("group %s is empty; it is pinned, so it stays", emptied.name)


def _silent_twin(session: Session, user: User | None) -> Session | None:
    """The connection of `user` from `session`'s address that has been silent longest: the one
    a returning user replaces when its address has no room (docs/protocol.md §6)."""
    if user is None:
        return None
    twins = [s for s in user.sessions if s.address == session.address and s.accepts_input]
    return min(twins, key=lambda s: s.last_seen, default=None)


# Refusals summarised by the login report rather than logged one by one.
_REPORTED = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.LOGIN_THROTTLED})

_LOGIN_ERRORS = frozenset(
    {
        ErrorCode.AUTH_FAILED,
        ErrorCode.BAD_REGISTER,
        ErrorCode.LOGIN_THROTTLED,
        ErrorCode.GROUP_FULL,
        ErrorCode.SERVER_FULL,
    }
)


def _summary(packet: bytes) -> str:
    if packet[:1] == b"#":
        return f"bundle of {len(packet)} bytes"
    return f"{message_address(packet)} ({len(packet)} bytes)"
