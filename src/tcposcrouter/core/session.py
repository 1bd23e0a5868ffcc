"""One connection as the router sees it: everything that decides what happens to it next is its
state here, and every move between states is one line of the table below.

    NEW ──register──▶ REGISTERING ──passwords right──▶ REGISTERED
     │ │                   │                             ▲    │
     │ └──resume: a kept place taken back (core/resume.py)┘    │
     │ (over a cap)        └──refused──▶ CLOSING ◀──fatal error, idle, slow consumer
     ▼                                      ▲
    REFUSED ──its framing shows──────────────┘
     every state ──connection gone──▶ CLOSED

NEW: connected, not registered; only a register is accepted. REFUSED: admitted over a cap
(server_full): its refusal is told in the framing it shows, then it is closed. REGISTERING: its
register's passwords are being checked (core/register.py); what it sends meanwhile waits in
`held`. REGISTERED: a member of a group, by a register or by a resume. CLOSING: the router
has decided to close it; input is ignored, and it has left its group (or its place is held);
how the connection ends (close or reset) is its mailbox's (core/outbox.py). CLOSED: the
connection is gone; nothing more happens to it. Every other move is a bug and raises
`IllegalTransition`.

Pure code.
"""

from __future__ import annotations

import enum

from ..errors import ErrorCode, RemoteError, RouterError
from ..limits import Limits
from ..osc.framing import AutoDecoder, Framing, InvalidFrame, PacketDecoder, decoder_for
from .directory import User
from .outbox import Mailbox
from .rates import RateBudget


class ErrorEpisode:
    """Repeats of one error on one connection: counted, and logged once when they stop."""

    __slots__ = ("count", "first", "last")

    def __init__(self, now: float) -> None:
        self.count = 0
        self.first = now
        self.last = now


__all__ = [
    "REFUSAL_GRACE_SECONDS",
    "UNREGISTERED",
    "ErrorEpisode",
    "IllegalTransition",
    "Session",
    "SessionState",
    "overdue",
]

# How long a connection refused with server_full may take to show its framing (so the refusal
# can be written in it) before it is closed without a word.
REFUSAL_GRACE_SECONDS = 2.0


class SessionState(enum.Enum):
    NEW = "new"
    REFUSED = "refused"
    REGISTERING = "registering"
    REGISTERED = "registered"
    CLOSING = "closing"
    CLOSED = "closed"


# The states before a register has begun: the connections that give way at a cap
# (core/admission.py), and that --workers may still move to their group's worker.
UNREGISTERED = frozenset({SessionState.NEW, SessionState.REFUSED})

_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.NEW: frozenset(
        {
            SessionState.REFUSED,
            SessionState.REGISTERING,
            SessionState.REGISTERED,
            SessionState.CLOSING,
            SessionState.CLOSED,
        }
    ),
    SessionState.REFUSED: frozenset({SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.REGISTERING: frozenset(
        {SessionState.REGISTERED, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.REGISTERED: frozenset({SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


class IllegalTransition(RouterError):
    """A session was asked to move between states the table does not allow: a bug."""


class Session:
    """One connection: who it is, its state, its decoder, and its mailbox for output."""

    __slots__ = (
        "address",
        "budget",
        "closing_since",
        "decoder",
        "held",
        "id",
        "last_seen",
        "mailbox",
        "opened_at",
        "paused_until",
        "peer",
        "quiet",
        "refusal",
        "state",
        "user",
    )

    def __init__(
        self,
        session_id: int,
        peer: str,
        address: str,
        now: float,
        decoder: PacketDecoder,
        mailbox: Mailbox,
    ) -> None:
        self.id = session_id
        self.peer = peer  # "host:port", for log lines
        self.address = address  # the host alone: what per-address limits count
        self.opened_at = now
        self.last_seen = now
        self.decoder = decoder
        self.mailbox = mailbox
        self.state = SessionState.NEW
        self.user: User | None = None
        # REFUSED: the refusal, sent in the framing the client speaks once it shows.
        self.refusal: RemoteError | None = None
        self.budget: RateBudget | None = None
        # REGISTERING: the packets that came after the register, waiting for its outcome.
        self.held: list[bytes | InvalidFrame] | None = None
        self.closing_since = 0.0  # when it moved to CLOSING
        self.paused_until = 0.0  # when its rate budget lets it be read from again
        # Error codes whose repeats are counted, not logged, with their tally (core/policy.py).
        self.quiet: dict[str, ErrorEpisode] | None = None

    @classmethod
    def open(
        cls,
        session_id: int,
        peer: str,
        address: str,
        now: float,
        mailbox: Mailbox,
        max_packet_size: int,
    ) -> Session:
        decoder = decoder_for(mailbox.framing, max_packet_size)
        return cls(session_id, peer, address, now, decoder, mailbox)

    def move_to(self, state: SessionState) -> None:
        if state not in _ALLOWED[self.state]:
            raise IllegalTransition(f"session {self.id}: {self.state.value} -> {state.value}")
        self.state = state

    def refuse_when_framing_shows(self, refusal: RemoteError) -> None:
        self.refusal = refusal
        self.move_to(SessionState.REFUSED)

    @property
    def accepts_input(self) -> bool:
        state = self.state
        return state is not SessionState.CLOSING and state is not SessionState.CLOSED

    def note_framing(self) -> None:
        """Take the framing the client has shown, for its output (call once bytes are in)."""
        decoder = self.decoder
        if isinstance(decoder, AutoDecoder) and decoder.inner is not None:
            self.decoder = decoder.inner  # detection is over: one object less per connection
        if self.mailbox.framing is None:
            self.mailbox.framing = decoder.framing

    @property
    def framing(self) -> Framing | None:
        return self.mailbox.framing

    def describe(self) -> str:
        """Who this is, for log lines: peer address, and user and group once registered."""
        if self.user is None:
            return f"[{self.peer}]"
        return f"{self.user.name}@{self.user.group.name} [{self.peer}]"


def overdue(session: Session, limits: Limits, now: float) -> RemoteError | None:
    """Why `session` must be closed at `now` (a refusal not yet told, no register in time,
    silence), or None. The register timeout counts from the connect, its check included."""
    state = session.state
    if state is SessionState.REFUSED:
        assert session.refusal is not None
        return session.refusal if now - session.opened_at >= REFUSAL_GRACE_SECONDS else None
    if state is SessionState.NEW or state is SessionState.REGISTERING:
        if now - session.opened_at >= limits.register_timeout:
            detail = f"no /oscrouter/register within {limits.register_timeout:g} s"
            return RemoteError(ErrorCode.REGISTER_TIMEOUT, detail, fatal=True)
    elif (
        state is SessionState.REGISTERED
        and limits.idle_timeout
        and now - session.last_seen >= limits.idle_timeout
    ):
        detail = f"nothing received for {limits.idle_timeout:g} s"
        return RemoteError(ErrorCode.IDLE_TIMEOUT, detail, fatal=True)
    return None
