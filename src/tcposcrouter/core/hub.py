"""The router as a pure object: bytes in from connections, decisions and bytes out.

The shell calls `open` on connect (with the `Sink` its connection writes to), `receive` with
every chunk of bytes read (for WebSocket: every message), `tick` about once a second, and
`close` when a connection is gone, passing the time (`now`, seconds on a monotonic clock) to
each. Whenever `has_output` is true it calls `flush()` once per turn of its event loop: the
outbox then writes each connection's queue with one `Sink.write` and closes or resets the
connections the hub gave up on. The hub never touches a socket; the shell never changes the
hub's state except through these calls.

Packets from elsewhere (another node, in cluster mode) enter through `deliver_from_elsewhere`
under the same rules as local ones; `subscribe` tells an edge who joins and leaves.

Everything docs/protocol.md §3 and §4 decide is here (the packet loop, broadcast, the error
policy) or in the parts it delegates to: `admission` (connection caps), `control` (register,
private, ping), `login` (register checks, throttle), `directory` (groups, users, receivers),
`rates` (rate budgets), `session` (states, timeouts), `outbox` (framing, queues, byte limits).

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.framing import Framing, InvalidFrame
from ..osc.messages import error_message, message_address
from ..osc.validate import split_bundle_controls, validate_packet
from .admission import Admission
from .control import ControlMessages, announce_members, not_registered
from .directory import Directory, MembershipEvent
from .outbox import Ending, Outbox, Sink
from .rates import DROP_AND_TELL, RateBudget
from .session import Session, SessionState, overdue
from .statistics import Counters, HubStatistics, snapshot

__all__ = ["PRE_REGISTER_MAX_PACKET_SIZE", "Hub", "HubConfig"]

log = logging.getLogger("tcposcrouter.hub")

# Largest packet accepted before a connection has registered. A register is well under 1 KB;
# keeping strangers to 16 KiB means 10,000 half-open connections hold at most 320 MiB of partial
# frames (SLIP counts double), however large the limit for members is.
PRE_REGISTER_MAX_PACKET_SIZE = 16 * 1024

NEW, REGISTERED, CLOSING, CLOSED = (
    SessionState.NEW,
    SessionState.REGISTERED,
    SessionState.CLOSING,
    SessionState.CLOSED,
)


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

    # -- the shell's entry points ----------------------------------------------------------

    def open(
        self, peer: str, address: str, now: float, sink: Sink, framing: Framing | None = None
    ) -> Session:
        """A new connection from `address` ("host:port" is `peer`, for logs). `framing` None:
        detect it from the first byte (TCP); else the connection's own (WebSocket)."""
        session_id = self._next_id
        self._next_id += 1
        max_size = min(self.limits.max_packet_size, PRE_REGISTER_MAX_PACKET_SIZE)
        mailbox = self.outbox.mailbox(sink, framing, session_id)
        session = Session.open(session_id, peer, address, now, mailbox, max_size)
        session.refusal = self._admission.admit(address)
        if self._rate_limited:
            session.budget = RateBudget(self.limits, now)
        self._sessions[session_id] = session
        self._counters.connections_opened += 1
        return session

    def receive(self, session: Session, data: bytes, now: float) -> None:
        """Handle bytes read from `session`'s connection."""
        if not session.accepts_input:
            return
        counters = self._counters
        session.last_seen = now
        counters.bytes_in += len(data)
        try:
            packets = session.decoder.feed(data)
        except RemoteError as error:
            session.note_framing()
            self._refuse(session, error)
            return
        if session.mailbox.framing is None:
            session.note_framing()
        if session.refusal is not None:  # now its framing is known: tell it, and close
            self._refuse(session, session.refusal)
            return
        counters.packets_in += len(packets)
        budget = session.budget
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
                if budget is not None and (verdict := budget.take(len(packet), now)):
                    counters.count(counters.drops, ErrorCode.RATE_LIMITED)
                    if verdict == DROP_AND_TELL:
                        self._refuse(session, RateBudget.refusal(self.limits))
                    if session.accepts_input:
                        continue
                    return
                try:
                    has_control = validate_packet(packet)
                except RemoteError as error:
                    self._broadcast(session, run)
                    self._refuse(session, error)
                else:
                    if not has_control and session.state is REGISTERED:
                        run.append(packet)
                        continue
                    self._broadcast(session, run)
                    self._packet(session, packet, has_control, now)
            if not session.accepts_input:
                return
        self._broadcast(session, run)

    def tick(self, now: float) -> None:
        """Close connections that did not register, or went silent, in time."""
        for session in list(self._sessions.values()):
            reason = overdue(session, self.limits, now)
            if reason is not None:
                self._refuse(session, reason)

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

    def close(self, session: Session) -> None:
        """The connection is gone (closed by either side): leave the group, forget it."""
        if session.state is CLOSED:
            return
        del self._sessions[session.id]
        self._admission.release(session.address)
        self._counters.connections_closed += 1
        if session.state is REGISTERED:
            log.info("leave %s", session.describe())
            self._leave(session)
        elif session.user is None:
            log.info("disconnect %s (never registered)", session.describe())
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

    def connections_from(self, address: str) -> int:
        return self._admission.connections_from(address)

    def statistics(self) -> HubStatistics:
        return snapshot(self._counters, self.outbox, self._sessions.values(), self.directory)

    # -- packets ---------------------------------------------------------------------------

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
            for control in controls:
                self._control(session, control, now)
                if not session.accepts_input:
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
        run.clear()

    def _control(self, session: Session, message: bytes, now: float) -> None:
        try:
            self._controls.handle(session, message, now)
        except RemoteError as error:
            self._refuse(session, error)

    # -- errors and endings ----------------------------------------------------------------

    def _refuse(self, session: Session, error: RemoteError) -> None:
        """Send the error reply; close the connection when the error, or the state, says so."""
        if not session.accepts_input:
            return  # already given up on: nothing more to say
        counters = self._counters
        counters.count(counters.errors, error.code)
        if error.code == ErrorCode.PACKET_INVALID:
            counters.count(counters.drops, error.code)
        if session.state is NEW and error.code in _LOGIN_ERRORS:
            counters.count(counters.refusals, error.code)
            log.info("register refused %s: %s: %s", session.describe(), error.code, error.detail)
        else:
            log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
        # A client that never spoke has shown no framing: it gets no reply (send() skips it).
        self.outbox.send(session.mailbox, error_message(error.code, error.detail))
        if error.fatal or session.state is not REGISTERED:
            self._end(session, Ending.CLOSE, error.code)

    def _end(self, session: Session, ending: Ending, reason: str) -> None:
        """The router gives up on `session`: it leaves its group now, and its connection is
        closed (or reset) at the next flush."""
        was_registered = session.state is REGISTERED
        session.move_to(CLOSING)
        if was_registered:
            self._leave(session)
        self.outbox.end(session.mailbox, ending)
        verb = "closing" if ending is Ending.CLOSE else "resetting"
        log.info("%s %s after %s", verb, session.describe(), reason)

    def _leave(self, session: Session) -> None:
        group = self.directory.leave(session)
        if group is not None:
            announce_members(self.outbox, group)
        elif session.user is not None:
            log.info("group %s removed: nobody left in it", session.user.group.name)


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
