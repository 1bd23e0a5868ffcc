"""Routing state: sessions (one per connection), users and groups (PROTOCOL.md §3).

A *session* is one TCP connection; a *user* is a name with a password inside a group, holding one
or more sessions; a *group* is a name with a password holding users in the order they joined.
Users and groups exist exactly as long as they have a session.

Pure code: no sockets, no event loop, no clock.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable

from .auth import PasswordHash
from .errors import RemoteError
from .framing import AutoDecoder, Framing
from .limits import TokenBucket

__all__ = ["MAX_NAME_LENGTH", "Group", "Session", "SessionState", "User", "name_problem"]

MAX_NAME_LENGTH = 64


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a user or group name (PROTOCOL.md §3), or None if it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if any(unicodedata.category(char) == "Cc" for char in name):
        return "contains a control character"
    return None


class SessionState(enum.Enum):
    NEW = "new"  # connected, not registered yet: only a register is accepted
    REGISTERED = "registered"
    CLOSING = "closing"  # the router has decided to close it; input is ignored from now on


class Session:
    """The router's view of one connection.

    `output` collects the framed bytes waiting to be written to the connection; the transport
    takes them all at once after each read (so one read that produces many deliveries for this
    connection costs one write). `owner` belongs to the transport layer and is never touched here.
    """

    __slots__ = (
        "address",
        "byte_bucket",
        "decoder",
        "id",
        "last_seen",
        "opened_at",
        "output",
        "owner",
        "packet_bucket",
        "peer",
        "rate_limited",
        "refusal",
        "slip",
        "state",
        "user",
        "write",
    )

    def __init__(
        self,
        session_id: int,
        peer: str,
        address: str,
        now: float,
        max_packet_size: int,
        owner: object,
    ) -> None:
        self.id = session_id
        self.peer = peer  # "host:port", for log lines
        self.address = address  # the host alone: what per-address limits count
        self.owner = owner
        self.opened_at = now
        self.last_seen = now
        self.decoder = AutoDecoder(max_packet_size)
        self.state = SessionState.NEW
        self.user: User | None = None
        self.output: list[bytes] = []
        # Set by the transport layer to a function that writes bytes to this connection; the
        # hub may hand a packet straight to it instead of queueing it (see Hub._deliver).
        self.write: Callable[[bytes], object] | None = None
        # Set when the router refuses the connection as soon as it has shown its framing
        # (server_full): the refusal is sent in the framing the client speaks.
        self.refusal: RemoteError | None = None
        self.packet_bucket: TokenBucket | None = None
        self.byte_bucket: TokenBucket | None = None
        self.rate_limited = False  # inside an episode of dropped packets
        # Whether output to this session is SLIP-framed, kept as a plain attribute because the
        # hot path asks it for every receiver of every packet. Set by note_framing().
        self.slip = False

    def note_framing(self) -> None:
        """Take the framing the client has shown (call once its first bytes are in)."""
        self.slip = self.decoder.framing is Framing.SLIP

    @property
    def closing(self) -> bool:
        return self.state is SessionState.CLOSING

    def take_output(self) -> bytes:
        output = self.output
        data = output[0] if len(output) == 1 else b"".join(output)
        output.clear()
        return data

    def describe(self) -> str:
        """Who this is, for log lines: peer address, and user and group once registered."""
        if self.user is None:
            return f"[{self.peer}]"
        return f"{self.user.name}@{self.user.group.name} [{self.peer}]"


class User:
    __slots__ = ("_receivers", "group", "name", "password", "sessions")

    def __init__(self, name: str, password: str, group: Group) -> None:
        self.name = name
        self.password = PasswordHash(password)
        self.group = group
        self.sessions: list[Session] = []
        # Every session of every other user of the group, built on first use after a change.
        self._receivers: list[Session] | None = None

    def receivers(self) -> list[Session]:
        receivers = self._receivers
        if receivers is None:
            receivers = [
                session
                for other in self.group.users.values()
                if other is not self
                for session in other.sessions
            ]
            self._receivers = receivers
        return receivers

    def forget_receivers(self) -> None:
        self._receivers = None


class Group:
    __slots__ = ("name", "password", "users")

    def __init__(self, name: str, password: str) -> None:
        self.name = name
        self.password = PasswordHash(password)
        self.users: dict[str, User] = {}  # in the order they joined (dicts keep insertion order)

    def sessions(self) -> list[Session]:
        return [session for user in self.users.values() for session in user.sessions]

    def user_names(self) -> list[str]:
        return list(self.users)

    def add_session(self, user: User, session: Session) -> None:
        if user.name not in self.users:
            self.users[user.name] = user
        user.sessions.append(session)
        session.user = user
        self._membership_changed()

    def remove_session(self, session: Session) -> None:
        """Take `session` out; drop its user when it was the user's last one."""
        user = session.user
        if user is None or user.group is not self:
            return
        user.sessions.remove(session)
        if not user.sessions:
            del self.users[user.name]
        self._membership_changed()

    def _membership_changed(self) -> None:
        for user in self.users.values():
            user.forget_receivers()
