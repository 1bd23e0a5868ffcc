"""The router as a pure object: bytes in from one connection, bytes out to many.

The transport layer calls `open_session` on connect, `receive` with every chunk of bytes read,
`tick` about once a second, and `close_session` when a connection is gone; it passes the time
(`now`, seconds on a monotonic clock) to each. After each call it takes `take_dirty()`: the
sessions with output waiting, writes `session.take_output()` to each, and closes those whose
state is CLOSING once their output is written.

Everything PROTOCOL.md §3 decides is here — register, broadcast, private messages, the user list,
ping, control messages inside bundles, the `/oscrouter/` namespace, error replies (§4) — and
every limit of `limits.Limits` except the output buffer, which only the transport can see.

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .control import PING, PRIVATE, REGISTER, read_private, read_register
from .errors import ErrorCode, RemoteError
from .framing import InvalidFrame, frame_length_prefix, frame_slip
from .limits import Limits, LoginThrottle, TokenBucket
from .osc import build_message, message_address, printable, split_bundle_controls, validate_packet
from .routing import Group, Session, SessionState, User

__all__ = ["PRE_REGISTER_MAX_PACKET_SIZE", "Hub", "HubConfig", "HubStatistics"]

log = logging.getLogger("tcposcrouter.hub")

# Largest packet accepted before a connection has registered. A register is well under 1 KB;
# keeping strangers to 16 KiB means 10,000 half-open connections hold at most 320 MiB of partial
# frames (SLIP counts double), however large the limit for members is.
PRE_REGISTER_MAX_PACKET_SIZE = 16 * 1024
# How long a connection refused with server_full may take to show its framing (so the refusal
# can be written in it) before it is closed without a word.
REFUSAL_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class HubConfig:
    limits: Limits = field(default_factory=Limits)
    # Write the address and size of every routed packet to the debug log. Off by default: message
    # contents are the musicians' business, and logging per packet costs more than routing it.
    log_messages: bool = False


@dataclass
class HubStatistics:
    """Counters since start. `deliveries` counts packets queued or handed to receivers."""

    sessions_opened: int = 0
    sessions_closed: int = 0
    registrations: int = 0
    registrations_failed: int = 0
    packets_received: int = 0
    deliveries: int = 0
    packets_rejected: int = 0
    packets_rate_limited: int = 0
    error_replies: dict[str, int] = field(default_factory=dict)


class Hub:
    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig()
        self.limits = self.config.limits
        self.groups: dict[str, Group] = {}
        self.stats = HubStatistics()
        self._sessions: dict[int, Session] = {}
        self._per_address: dict[str, int] = {}
        self._next_id = 1
        self._dirty: list[Session] = []
        self._now = 0.0
        # True while handling a read that held exactly one packet: see _deliver.
        self._single_packet_read = False
        self._throttle = LoginThrottle(
            self.limits.login_failures_allowed, self.limits.login_max_delay
        )
        self._rate_limited = self.limits.rate_limit_packets > 0 or self.limits.rate_limit_bytes > 0

    # -- the transport's entry points ------------------------------------------------------

    def open_session(self, peer: str, address: str, now: float, owner: object = None) -> Session:
        """A new connection from `address` ("host:port" is `peer`, for logs)."""
        limits = self.limits
        session = Session(
            self._next_id,
            peer,
            address,
            now,
            min(limits.max_packet_size, PRE_REGISTER_MAX_PACKET_SIZE),
            owner,
        )
        self._next_id += 1
        from_address = self._per_address.get(address, 0)
        if limits.max_connections and len(self._sessions) >= limits.max_connections:
            session.refusal = _server_full(f"the router has {len(self._sessions)} connections")
        elif limits.max_connections_per_address and (
            from_address >= limits.max_connections_per_address
        ):
            session.refusal = _server_full(f"{from_address} connections from your address")
        self._sessions[session.id] = session
        self._per_address[address] = from_address + 1
        self.stats.sessions_opened += 1
        if self._rate_limited:
            if limits.rate_limit_packets > 0:
                session.packet_bucket = TokenBucket(
                    limits.rate_limit_packets, limits.packet_burst(), now
                )
            if limits.rate_limit_bytes > 0:
                session.byte_bucket = TokenBucket(limits.rate_limit_bytes, limits.byte_burst(), now)
        return session

    def receive(self, session: Session, data: bytes, now: float) -> None:
        """Handle bytes read from `session`'s connection."""
        if session.state is SessionState.CLOSING:
            return
        self._now = now
        session.last_seen = now
        try:
            packets = session.decoder.feed(data)
        except RemoteError as error:
            session.note_framing()
            self._refuse(session, error)
            return
        if session.state is SessionState.NEW:
            session.note_framing()
        if session.refusal is not None:  # now its framing is known: tell it, and close
            self._refuse(session, session.refusal)
            return
        self._single_packet_read = len(packets) == 1
        for packet in packets:
            self.stats.packets_received += 1
            if self._rate_limited and not self._within_rate(session, packet, now):
                continue
            if packet.__class__ is bytes:
                assert isinstance(packet, bytes)
                self._handle_packet(session, packet)
            else:
                assert isinstance(packet, InvalidFrame)
                self._refuse(session, RemoteError(ErrorCode.PACKET_INVALID, packet.detail))
            if session.closing:
                return

    def tick(self, now: float) -> None:
        """Close connections that did not register, or went silent, in time."""
        self._now = now
        limits = self.limits
        for session in list(self._sessions.values()):
            if session.closing:
                continue
            if session.state is SessionState.NEW:
                if session.refusal is not None:
                    if now - session.opened_at >= REFUSAL_GRACE_SECONDS:
                        self._refuse(session, session.refusal)
                elif now - session.opened_at >= limits.register_timeout:
                    self._refuse(
                        session,
                        RemoteError(
                            ErrorCode.REGISTER_TIMEOUT,
                            f"no /oscrouter/register within {limits.register_timeout:g} s",
                            fatal=True,
                        ),
                    )
            elif limits.idle_timeout and now - session.last_seen >= limits.idle_timeout:
                self._refuse(
                    session,
                    RemoteError(
                        ErrorCode.IDLE_TIMEOUT,
                        f"nothing received for {limits.idle_timeout:g} s",
                        fatal=True,
                    ),
                )

    def slow_consumer(self, session: Session, buffered: int) -> None:
        """The transport saw more than `max_output_buffer` bytes waiting for `session`.

        The connection is closed at once, without waiting for its buffer to drain (that is what
        it cannot do), so the error reply most likely never arrives; the log line and counter do.
        """
        if session.closing:
            return
        self._refuse(
            session,
            RemoteError(
                ErrorCode.SLOW_CONSUMER,
                f"{buffered} bytes waiting to be read, more than the limit of "
                f"{self.limits.max_output_buffer}",
                fatal=True,
            ),
        )

    def close_session(self, session: Session) -> None:
        """The connection is gone (closed by either side): leave the group."""
        if self._sessions.pop(session.id, None) is None:
            return
        self.stats.sessions_closed += 1
        remaining = self._per_address[session.address] - 1
        if remaining:
            self._per_address[session.address] = remaining
        else:
            del self._per_address[session.address]
        session.state = SessionState.CLOSING
        session.output.clear()
        user = session.user
        if user is None:
            log.info("disconnect %s (never registered)", session.describe())
            return
        group = user.group
        group.remove_session(session)
        log.info("leave %s", session.describe())
        if not group.users:
            del self.groups[group.name]
            log.info("group %s removed: nobody left in it", group.name)
        else:
            self._send_user_list(group)

    def take_dirty(self) -> list[Session]:
        """The sessions that have output waiting or must be closed, each once."""
        dirty = self._dirty
        self._dirty = []
        return dirty

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def connections_from(self, address: str) -> int:
        return self._per_address.get(address, 0)

    # -- packets ---------------------------------------------------------------------------

    def _within_rate(self, session: Session, packet: bytes | InvalidFrame, now: float) -> bool:
        packets, byte_bucket = session.packet_bucket, session.byte_bucket
        size = len(packet) if isinstance(packet, bytes) else 0
        if (packets is None or packets.take(1, now)) and (
            byte_bucket is None or byte_bucket.take(size, now)
        ):
            session.rate_limited = False
            return True
        self.stats.packets_rate_limited += 1
        if not session.rate_limited:  # one reply and one log line per episode
            session.rate_limited = True
            limits = self.limits
            self._refuse(
                session,
                RemoteError(
                    ErrorCode.RATE_LIMITED,
                    f"more than {limits.rate_limit_packets:g} packets or "
                    f"{limits.rate_limit_bytes:g} bytes per second: packets dropped",
                ),
            )
        return False

    def _handle_packet(self, session: Session, packet: bytes) -> None:
        try:
            has_control = validate_packet(packet)
        except RemoteError as error:
            self._refuse(session, error)
            return
        if not has_control:
            if session.state is SessionState.REGISTERED:
                self._broadcast(session, packet)
            else:
                self._refuse(session, _not_registered(packet))
            return
        if packet[0] == 0x2F:  # '/': a control message on its own
            self._control(session, packet)
            return
        # A bundle that holds control messages: act on them in order, then forward the rest.
        controls, rest = split_bundle_controls(packet)
        for control in controls:
            self._control(session, control)
            if session.closing:
                return
        if rest is not None and session.state is SessionState.REGISTERED:
            self._broadcast(session, rest)

    def _broadcast(self, session: Session, packet: bytes) -> None:
        user = session.user
        assert user is not None
        receivers = user.receivers()
        if not receivers:
            return
        if self.config.log_messages:
            log.debug("%s -> %d: %s", session.describe(), len(receivers), _summary(packet))
        self._deliver(receivers, packet, hand_over=self._single_packet_read)

    def _deliver(self, receivers: list[Session], packet: bytes, hand_over: bool = False) -> None:
        """Queue one packet for many sessions, framed once per framing in use.

        With `hand_over` (a read that held a single packet: every message of an ensemble at a
        musical pace) the bytes go straight to each receiver's `write`, where the transport set
        one: there is nothing to coalesce them with, and a second pass over the receivers only
        adds latency (measured with the benchmark's ensemble scenario). A receiver that already
        has output queued, or is closing, or has no `write`, gets the packet queued as usual, so
        the order of what it receives never changes.
        """
        length_prefixed: bytes | None = None
        slipped: bytes | None = None
        dirty = self._dirty
        registered = SessionState.REGISTERED
        for receiver in receivers:
            if receiver.slip:
                if slipped is None:
                    slipped = frame_slip(packet)
                data = slipped
            else:
                if length_prefixed is None:
                    length_prefixed = frame_length_prefix(packet)
                data = length_prefixed
            output = receiver.output
            write = receiver.write
            if hand_over and write is not None and not output and receiver.state is registered:
                write(data)
                continue
            if not output:
                dirty.append(receiver)
            output.append(data)
        self.stats.deliveries += len(receivers)

    # -- control messages ------------------------------------------------------------------

    def _control(self, session: Session, message: bytes) -> None:
        try:
            if message.startswith(REGISTER):
                self._register(session, message)
            elif session.state is not SessionState.REGISTERED:
                raise _not_registered(message)
            elif message.startswith(PRIVATE):
                self._private(session, message)
            elif message.startswith(PING):
                pass  # only shows the connection is alive (PROTOCOL.md §3)
            else:
                raise RemoteError(
                    ErrorCode.UNKNOWN_COMMAND,
                    f"{message_address(message)} is reserved for the router",
                )
        except RemoteError as error:
            self._refuse(session, error)

    def _register(self, session: Session, message: bytes) -> None:
        if session.state is SessionState.REGISTERED:
            raise RemoteError(ErrorCode.ALREADY_REGISTERED, "this connection is already registered")
        request = read_register(message)
        wait = self._throttle.wait_needed(session.address, self._now)
        if wait > 0:
            raise RemoteError(
                ErrorCode.LOGIN_THROTTLED,
                f"too many failed logins from your address; try again in {wait:.0f} s",
                fatal=True,
            )
        limits = self.limits
        group = self.groups.get(request.group)
        if group is None:
            if limits.max_groups and len(self.groups) >= limits.max_groups:
                raise _server_full(f"the router has {len(self.groups)} groups")
        elif not group.password.matches(request.group_password):
            self._throttle.failed(session.address, self._now)
            raise _auth_failed(f"wrong password for group {request.group}")
        user = None if group is None else group.users.get(request.user)
        if user is None:
            if (
                group is not None
                and limits.max_users_per_group
                and (len(group.users) >= limits.max_users_per_group)
            ):
                raise RemoteError(
                    ErrorCode.GROUP_FULL,
                    f"group {request.group} has {len(group.users)} users already",
                    fatal=True,
                )
        elif not user.password.matches(request.user_password):
            self._throttle.failed(session.address, self._now)
            raise _auth_failed(f"wrong password for user {request.user} in group {request.group}")

        if group is None:
            group = Group(request.group, request.group_password)
            self.groups[request.group] = group
            log.info("group %s created by %s", request.group, session.peer)
        if user is None:
            user = User(request.user, request.user_password, group)
        group.add_session(user, session)
        session.state = SessionState.REGISTERED
        session.decoder.set_max_packet_size(limits.max_packet_size)
        self.stats.registrations += 1
        log.info("register %s (connection %d of this user)", session.describe(), len(user.sessions))
        # The path form first: it is what the SuperCollider client waits for (PROTOCOL.md §6).
        self._deliver([session], build_message(request.reply_address()))
        self._deliver(
            [session], build_message("/oscrouter/register", ("s", request.user), request.random_id)
        )
        self._send_user_list(group)

    def _private(self, session: Session, message: bytes) -> None:
        user = session.user
        assert user is not None
        request = read_private(message)
        target = user.group.users.get(request.target)
        if target is None:
            raise RemoteError(
                ErrorCode.UNKNOWN_USER,
                f"no user {printable(request.target)} in group {user.group.name}",
            )
        if self.config.log_messages:
            log.debug("%s -> %s privately: %s", session.describe(), target.name, request.address)
        self._deliver(target.sessions, request.as_sent_by(user.name))

    def _send_user_list(self, group: Group) -> None:
        names = [("s", name) for name in group.user_names()]
        self._deliver(group.sessions(), build_message("/oscrouter/userlist", *names))

    # -- errors ----------------------------------------------------------------------------

    def _refuse(self, session: Session, error: RemoteError) -> None:
        """Send the error reply; close the connection when the error, or the state, says so."""
        fatal = error.fatal or session.state is not SessionState.REGISTERED
        stats = self.stats
        stats.error_replies[error.code] = stats.error_replies.get(error.code, 0) + 1
        if error.code == ErrorCode.PACKET_INVALID:
            stats.packets_rejected += 1
        if session.state is SessionState.NEW and error.code in _LOGIN_ERRORS:
            stats.registrations_failed += 1
            log.info("register refused %s: %s: %s", session.describe(), error.code, error.detail)
        else:
            log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
        if session.decoder.framing is not None:  # a client that never spoke gets no reply
            reply = build_message("/oscrouter/error", ("s", error.code), ("s", error.detail))
            self._deliver([session], reply)
        if fatal:
            session.state = SessionState.CLOSING
            if not session.output:
                self._dirty.append(session)  # so that the transport closes it
            log.info("closing %s after %s", session.describe(), error.code)


_LOGIN_ERRORS = frozenset(
    {
        ErrorCode.AUTH_FAILED,
        ErrorCode.BAD_REGISTER,
        ErrorCode.LOGIN_THROTTLED,
        ErrorCode.GROUP_FULL,
        ErrorCode.SERVER_FULL,
    }
)


def _not_registered(packet: bytes) -> RemoteError:
    what = message_address(packet) if packet[:1] == b"/" else "a bundle"
    return RemoteError(
        ErrorCode.NOT_REGISTERED,
        f"the first packet must be /oscrouter/register, not {what}",
        fatal=True,
    )


def _auth_failed(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.AUTH_FAILED, detail, fatal=True)


def _server_full(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.SERVER_FULL, detail, fatal=True)


def _summary(packet: bytes) -> str:
    if packet[:1] == b"#":
        return f"bundle of {len(packet)} bytes"
    return f"{message_address(packet)} ({len(packet)} bytes)"
