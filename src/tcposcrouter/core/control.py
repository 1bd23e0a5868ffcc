"""The control messages clients send: register, private, ping and time, and the `/oscrouter/`
namespace (docs/protocol.md §3). A refusal is raised as a `RemoteError` for the hub's error
policy to answer.

Pure code.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode, RemoteError
from ..osc.messages import (
    PING,
    PRIVATE,
    REGISTER,
    TIME,
    RegisterRequest,
    build_message,
    message_address,
    printable,
    read_private,
    read_register,
    read_time_request,
    time_reply,
    time_tag,
)
from .directory import Directory, announce_members
from .elsewhere import ClusterPort
from .login import Joining, Login, PasswordCheck
from .outbox import Outbox
from .session import Session, SessionState
from .settings import Settings
from .statistics import Counters

__all__ = ["ControlMessages", "not_registered"]

log = logging.getLogger("tcposcrouter.hub")


def not_registered(packet: bytes) -> RemoteError:
    what = message_address(packet) if packet[:1] == b"/" else "a bundle"
    detail = f"the first packet must be /oscrouter/register, not {what}"
    return RemoteError(ErrorCode.NOT_REGISTERED, detail, fatal=True)


class ControlMessages:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        outbox: Outbox,
        login: Login,
        cluster: ClusterPort,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._outbox = outbox
        self._login = login
        self._cluster = cluster
        self._counters = counters

    def handle(self, session: Session, message: bytes, now: float) -> PasswordCheck | None:
        """Act on one control message from `session`; raise the refusal, if any. A register
        returns the password check it needs; `join` finishes it."""
        if message.startswith(REGISTER):
            return self._register(session, message, now)
        if session.state is not SessionState.REGISTERED:
            raise not_registered(message)
        elif message.startswith(PRIVATE):
            self._private(session, message)
        elif message.startswith(TIME):
            self._time(session, message, now)
        elif not message.startswith(PING):  # a ping only shows the connection is alive
            reserved = f"{message_address(message)} is reserved for the router"
            raise RemoteError(ErrorCode.UNKNOWN_COMMAND, reserved)
        return None

    def _register(self, session: Session, message: bytes, now: float) -> PasswordCheck:
        if session.state is SessionState.REGISTERED:
            raise RemoteError(ErrorCode.ALREADY_REGISTERED, "this connection is already registered")
        return self._login.prepare(session, read_register(message), now)

    def join(self, session: Session, request: RegisterRequest, joining: Joining) -> None:
        """Register `session` as `Login.complete` allowed: join, reply, announce."""
        created = joining.group is None
        user = self._directory.join(
            session, request.group, request.user, joining.group_hash, joining.user_hash
        )
        if created:
            log.info("group %s created by %s", request.group, session.peer)
        session.move_to(SessionState.REGISTERED)
        session.decoder.set_max_packet_size(self._settings.limits.max_packet_size)
        self._counters.registrations += 1
        log.info("register %s (connection %d of this user)", session.describe(), len(user.sessions))
        # The path form first: it is what the SuperCollider client waits for (docs/protocol.md §6).
        outbox, mailbox = self._outbox, session.mailbox
        outbox.send(mailbox, build_message(request.reply_address()))
        reply = build_message("/oscrouter/register", ("s", request.user), request.random_id)
        outbox.send(mailbox, reply)
        announce_members(outbox, user.group)

    def _time(self, session: Session, message: bytes, now: float) -> None:
        """Answer the sender alone with when the request arrived and when the answer left
        (docs/protocol.md §9). Both are the time of the read: the reply leaves in the same turn
        of the event loop, microseconds later, and the client's estimate takes the round trip
        as a whole."""
        client_time = read_time_request(message)
        stamp = time_tag(now + self._settings.wall_clock_offset)
        self._outbox.send(session.mailbox, time_reply(client_time, stamp, stamp))

    def _private(self, session: Session, message: bytes) -> None:
        user = session.user
        assert user is not None
        request = read_private(message)
        target = user.group.users.get(request.target)
        if target is None:
            unknown = f"no user {printable(request.target)} in group {user.group.name}"
            raise RemoteError(ErrorCode.UNKNOWN_USER, unknown)
        if self._settings.log_messages:
            log.debug("%s -> %s privately: %s", session.describe(), target.name, request.address)
        message = request.as_sent_by(user.name)
        if target.sessions:
            self._outbox.deliver(target.mailboxes(), message)
        elsewhere = self._cluster.elsewhere
        if target.remote and elsewhere is not None:
            elsewhere.private(user.group.name, target.name, message)
