"""The router as a pure object: bytes in from one connection, bytes out to many.

The transport layer calls `open_session` on connect, `receive` with every chunk of bytes read, and
`close_session` when the connection is gone. After each call it asks `take_dirty()` for the
sessions that have output waiting, writes `session.take_output()` to each, and closes those whose
state is CLOSING once their output is written.

Everything PROTOCOL.md §3 decides is here: register, broadcast, private messages, the user list,
ping, control messages inside bundles, the `/oscrouter/` namespace and error replies (§4).

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pythonosc.parsing import osc_types

from .errors import ErrorCode, RemoteError
from .framing import (
    DEFAULT_MAX_PACKET_SIZE,
    Framing,
    InvalidFrame,
    frame_length_prefix,
    frame_slip,
)
from .osc import (
    Argument,
    build_message,
    message_address,
    parse_arguments,
    printable,
    split_bundle_controls,
    validate_packet,
)
from .routing import Group, Session, SessionState, User, name_problem

__all__ = ["Hub", "HubConfig", "HubStatistics"]

log = logging.getLogger("tcposcrouter.hub")

REGISTER = b"/oscrouter/register\x00"
PRIVATE = b"/oscrouter/private\x00"
PING = b"/oscrouter/ping\x00"
_STRING_TAGS = ("s", "S")
_ID_TAGS = ("i", "h", "f", "d")


@dataclass(frozen=True)
class HubConfig:
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    # Write the address and size of every routed packet to the debug log. Off by default: message
    # contents are the musicians' business, and logging per packet costs more than routing it.
    log_messages: bool = False


@dataclass
class HubStatistics:
    """Counters since start. `deliveries` counts packets written to receivers."""

    sessions_opened: int = 0
    sessions_closed: int = 0
    registrations: int = 0
    registrations_failed: int = 0
    packets_received: int = 0
    deliveries: int = 0
    packets_rejected: int = 0
    error_replies: dict[str, int] = field(default_factory=dict)


def _format_random_id(value: object) -> str:
    # As the original router wrote it (PROTOCOL.md §3): integers in decimal, floats as str() does.
    return str(value)


class Hub:
    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig()
        self.groups: dict[str, Group] = {}
        self.stats = HubStatistics()
        self._sessions: dict[int, Session] = {}
        self._next_id = 1
        self._dirty: list[Session] = []

    # -- the transport's entry points ------------------------------------------------------

    def open_session(self, peer: str, owner: object = None) -> Session:
        session = Session(self._next_id, peer, self.config.max_packet_size, owner)
        self._next_id += 1
        self._sessions[session.id] = session
        self.stats.sessions_opened += 1
        return session

    def receive(self, session: Session, data: bytes) -> None:
        """Handle bytes read from `session`'s connection."""
        if session.closing:
            return
        try:
            packets = session.decoder.feed(data)
        except RemoteError as error:
            self._refuse(session, error)
            return
        for packet in packets:
            self.stats.packets_received += 1
            if packet.__class__ is not bytes:
                assert isinstance(packet, InvalidFrame)
                self._refuse(session, RemoteError(ErrorCode.PACKET_INVALID, packet.detail))
            else:
                assert isinstance(packet, bytes)
                self._handle_packet(session, packet)
            if session.closing:
                return

    def close_session(self, session: Session) -> None:
        """The connection is gone (closed by either side): leave the group."""
        if self._sessions.pop(session.id, None) is None:
            return
        self.stats.sessions_closed += 1
        session.state = SessionState.CLOSING
        session.output.clear()
        user = session.user
        if user is None:
            log.info("disconnect %s (never registered)", session.describe())
            return
        group = user.group
        group.remove_session(session)
        log.info("leave %s", session.describe())
        if not user.sessions:
            log.debug("user %s left group %s", user.name, group.name)
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

    # -- packets -------------------------------------------------------------------------------

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
        self._deliver(receivers, packet)

    def _deliver(self, receivers: list[Session], packet: bytes) -> None:
        """Queue one packet for many sessions, framed once per framing in use."""
        length_prefixed: bytes | None = None
        slipped: bytes | None = None
        dirty = self._dirty
        for receiver in receivers:
            if receiver.decoder.framing is Framing.SLIP:
                if slipped is None:
                    slipped = frame_slip(packet)
                data = slipped
            else:
                if length_prefixed is None:
                    length_prefixed = frame_length_prefix(packet)
                data = length_prefixed
            output = receiver.output
            if not output:
                dirty.append(receiver)
            output.append(data)
        self.stats.deliveries += len(receivers)

    def _send(self, session: Session, packet: bytes) -> None:
        self._deliver([session], packet)

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
        args = parse_arguments(message)
        user_name, user_password, group_name, group_password, random_id = _register_fields(args)
        group = self.groups.get(group_name)
        if group is None:
            group = Group(group_name, group_password)
            self.groups[group_name] = group
            log.info("group %s created by %s", group_name, session.peer)
        elif not group.password.matches(group_password):
            raise _auth_failed(f"wrong password for group {group_name}")
        user = group.users.get(user_name)
        if user is None:
            user = User(user_name, user_password, group)
        elif not user.password.matches(user_password):
            raise _auth_failed(f"wrong password for user {user_name} in group {group_name}")

        group.add_session(user, session)
        session.state = SessionState.REGISTERED
        self.stats.registrations += 1
        log.info("register %s (connection %d of this user)", session.describe(), len(user.sessions))
        # The path form first: it is what the SuperCollider client waits for (PROTOCOL.md §6).
        self._send(
            session,
            build_message(f"/oscrouter/register/{user_name}/{_format_random_id(random_id[1])}"),
        )
        self._send(session, build_message("/oscrouter/register", ("s", user_name), random_id))
        self._send_user_list(group)

    def _private(self, session: Session, message: bytes) -> None:
        user = session.user
        assert user is not None
        args = parse_arguments(message)
        if len(args) < 2 or args[0].tag not in _STRING_TAGS or args[1].tag not in _STRING_TAGS:
            raise RemoteError(
                ErrorCode.BAD_PRIVATE,
                "/oscrouter/private needs a target user name and an address as strings",
            )
        target_name = args[0].value
        assert isinstance(target_name, str)
        target = user.group.users.get(target_name)
        if target is None:
            raise RemoteError(
                ErrorCode.UNKNOWN_USER,
                f"no user {printable(target_name)} in group {user.group.name}",
            )
        # Only the first argument changes (target -> sender); type tags and everything after it
        # go on unchanged, byte for byte.
        first = args[0]
        rewritten = (
            message[: first.start] + osc_types.write_string(user.name) + message[first.end :]
        )
        if self.config.log_messages:
            log.debug("%s -> %s privately: %s", session.describe(), target_name, args[1].value)
        self._deliver(target.sessions, rewritten)

    def _send_user_list(self, group: Group) -> None:
        names = [("s", name) for name in group.user_names()]
        self._deliver(group.sessions(), build_message("/oscrouter/userlist", *names))

    # -- errors ----------------------------------------------------------------------------------

    def _refuse(self, session: Session, error: RemoteError) -> None:
        """Send the error reply; close the connection when the error, or the state, says so."""
        fatal = error.fatal or session.state is not SessionState.REGISTERED
        stats = self.stats
        stats.error_replies[error.code] = stats.error_replies.get(error.code, 0) + 1
        if error.code == ErrorCode.PACKET_INVALID:
            stats.packets_rejected += 1
        if session.state is SessionState.NEW and error.code in (
            ErrorCode.AUTH_FAILED,
            ErrorCode.BAD_REGISTER,
        ):
            stats.registrations_failed += 1
            log.info("register refused %s: %s: %s", session.describe(), error.code, error.detail)
        else:
            log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
        self._send(
            session, build_message("/oscrouter/error", ("s", error.code), ("s", error.detail))
        )
        if fatal:
            session.state = SessionState.CLOSING
            log.info("closing %s after %s", session.describe(), error.code)


def _not_registered(packet: bytes) -> RemoteError:
    what = message_address(packet) if packet[:1] == b"/" else "a bundle"
    return RemoteError(
        ErrorCode.NOT_REGISTERED,
        f"the first packet must be /oscrouter/register, not {what}",
        fatal=True,
    )


def _auth_failed(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.AUTH_FAILED, detail, fatal=True)


def _bad_register(detail: str) -> RemoteError:
    return RemoteError(
        ErrorCode.BAD_REGISTER,
        f"{detail}; expected /oscrouter/register userName userPassword groupName "
        "groupPassword [randomId]",
        fatal=True,
    )


def _register_fields(args: list[Argument]) -> tuple[str, str, str, str, tuple[str, object]]:
    """Check the register arguments (PROTOCOL.md §3); extra arguments are ignored."""
    if len(args) < 4:
        raise _bad_register(f"{len(args)} arguments")
    texts: list[str] = []
    for arg in args[:4]:
        if arg.tag not in _STRING_TAGS or not isinstance(arg.value, str):
            raise _bad_register(f"argument {len(texts) + 1} has type {arg.tag!r}, not a string")
        texts.append(arg.value)
    user_name, user_password, group_name, group_password = texts
    for what, name in (("user name", user_name), ("group name", group_name)):
        problem = name_problem(name)
        if problem is not None:
            raise _bad_register(f"the {what} {problem}")
    random_id: tuple[str, object] = ("i", 0)
    if len(args) >= 5:
        extra = args[4]
        if extra.tag not in _ID_TAGS:
            raise _bad_register(f"randomId has type {extra.tag!r}, not a number")
        random_id = (extra.tag, extra.value)
    return user_name, user_password, group_name, group_password, random_id


def _summary(packet: bytes) -> str:
    if packet[:1] == b"#":
        return f"bundle of {len(packet)} bytes"
    return f"{message_address(packet)} ({len(packet)} bytes)"
