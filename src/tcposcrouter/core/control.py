"""A member's control messages: private, ping, time, tempo, state and session, `/oscrouter/info`
(before the register too), and the rest of the `/oscrouter/` namespace (docs/protocol.md §3,
§9, §11 to §14). The register is core/register.py's, the tempo's and the state's workings
core/tempo.py's and core/state.py's. A refusal is raised as a `RemoteError` for the hub's error
policy to answer.

Pure code.
"""

from __future__ import annotations

import logging

from .. import __version__
from ..errors import ErrorCode, RemoteError
from ..osc.messages import (
    PING,
    PRIVATE,
    TIME,
    message_address,
    printable,
    read_private,
    read_time_request,
    time_reply,
    time_tag,
)
from ..osc.resume import RESUME_PREFIX as RESUME
from ..osc.resume import SESSION_ADDRESSES, SESSION_PREFIX
from ..osc.state import STATE, STATE_ADDRESSES
from ..osc.tempo import INFO_PREFIX, TEMPO, TEMPO_ADDRESSES, info_message
from .elsewhere import ClusterPort
from .outbox import Outbox
from .resume import Resumes
from .session import Session, SessionState
from .settings import Settings
from .state import StateMessages
from .tempo import GroupTempo

__all__ = ["ControlMessages", "not_registered"]

log = logging.getLogger("tcposcrouter.hub")

_TEMPO = TEMPO.encode()  # the prefix of every tempo address
_STATE = STATE.encode()  # and of every state address


def not_registered(packet: bytes) -> RemoteError:
    what = message_address(packet) if packet[:1] == b"/" else "a bundle"
    detail = f"the first packet must be /oscrouter/register, not {what}"
    return RemoteError(ErrorCode.NOT_REGISTERED, detail, fatal=True)


class ControlMessages:
    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        cluster: ClusterPort,
        resumes: Resumes,
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._cluster = cluster
        self._resumes = resumes
        self._tempo = GroupTempo(settings, outbox)
        self._state = StateMessages(settings, outbox)

    def handle(self, session: Session, message: bytes, now: float) -> None:
        """Act on one control message other than a register from `session`; raise the
        refusal, if any."""
        if message.startswith(INFO_PREFIX):
            self._info(session, message)
        elif session.state is not SessionState.REGISTERED:
            raise not_registered(message)
        elif message.startswith(PRIVATE):
            self._private(session, message)
        elif message.startswith(TIME):
            self._time(session, message, now)
        elif message.startswith(_TEMPO) and message_address(message) in TEMPO_ADDRESSES:
            user = session.user
            assert user is not None
            shared = self._cluster.shared_tempo
            self._tempo.handle(user.group, session.mailbox, message, now, shared)
        elif message.startswith(_STATE) and message_address(message) in STATE_ADDRESSES:
            user = session.user
            assert user is not None
            receivers, shared_state = user.receivers(), self._cluster.elsewhere
            self._state.handle(
                user.group, session.mailbox, receivers, message, user.name, shared_state
            )
        elif message.startswith(SESSION_PREFIX) and message_address(message) in SESSION_ADDRESSES:
            self._resumes.handle(session, message)
        elif message.startswith(RESUME):
            raise RemoteError(
                ErrorCode.ALREADY_REGISTERED,
                "this connection is a member already: a resume must be a connection's first packet",
            )
        elif not message.startswith(PING):  # a ping only shows the connection is alive
            reserved = f"{message_address(message)} is reserved for the router"
            raise RemoteError(ErrorCode.UNKNOWN_COMMAND, reserved)

    def _info(self, session: Session, message: bytes) -> None:
        """What this router supports, to anyone who asks, registered or not: a client tells
        an old router from a new one by it (docs/protocol.md §12)."""
        features = ["time", "tempo", "state"]
        if self._settings.limits.max_session_seconds:
            features.append("session")
        self._outbox.send(session.mailbox, info_message(__version__, features))

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
