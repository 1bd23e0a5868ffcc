"""A connection's life in the hub: opened (and admitted, or refused once its framing shows),
ended by the router (closed or reset at the next flush, leaving its group at once), gone
(forgotten), and everyone's goodbye when the router stops. docs/protocol.md §4 and §6. A member
with a session keeps its place when its connection ends, until a new connection resumes it or
its time is over (core/resume.py; §14).

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode
from ..limits import Limits
from ..osc.framing import Framing
from ..osc.messages import error_message
from .admission import Admission
from .directory import Directory, Member
from .outbox import Ending, Outbox, Sink
from .rates import RateBudget
from .resume import HeldPlace, Resumes
from .session import Session, SessionState
from .settings import Settings
from .statistics import Counters

__all__ = ["PRE_REGISTER_MAX_PACKET_SIZE", "Lifecycle"]

log = logging.getLogger("tcposcrouter.hub")

# Largest packet accepted before a connection has registered. A register is well under 1 KB;
# keeping strangers to 16 KiB means 10,000 half-open connections hold at most 320 MiB of partial
# frames (SLIP counts double), however large the limit for members is.
PRE_REGISTER_MAX_PACKET_SIZE = 16 * 1024

REGISTERED, CLOSING, CLOSED = SessionState.REGISTERED, SessionState.CLOSING, SessionState.CLOSED


class Lifecycle:
    def __init__(
        self,
        settings: Settings,
        sessions: dict[int, Session],
        directory: Directory,
        outbox: Outbox,
        admission: Admission,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._sessions = sessions  # the hub's, by id: every connection not gone
        self._directory = directory
        self._outbox = outbox
        self._admission = admission
        self._counters = counters
        self.resumes = Resumes(settings, outbox, admission, counters)
        self._next_id = 1
        # The connections the error policy's tick looks at: not registered yet, being closed,
        # or with an episode open (core/policy.py). A registered connection is visited once
        # and dropped from here: a crowd of quiet members costs the tick nothing.
        self.watched: dict[int, Session] = {}
        # Connections by framing ("unknown" until a client's first bytes show it), kept as they
        # come and go so that the statistics never count twenty thousand connections.
        self.by_framing: dict[str, int] = {}

    def open(
        self, peer: str, address: str, now: float, sink: Sink, framing: Framing | None
    ) -> Session:
        session_id = self._next_id
        self._next_id += 1
        limits = self._settings.limits
        max_size = min(limits.max_packet_size, PRE_REGISTER_MAX_PACKET_SIZE)
        mailbox = self._outbox.mailbox(sink, framing, session_id)
        session = Session.open(session_id, peer, address, now, mailbox, max_size)
        refusal, evicted = self._admission.admit(session)
        if refusal is not None:
            session.refuse_when_framing_shows(refusal)
        for old in evicted:
            self.make_room(old, now)
        if RateBudget.needed(limits):
            session.budget = RateBudget(limits, now)
        self._sessions[session_id] = session
        self.watched[session_id] = session
        self._count_framing(session, 1)
        self._counters.connections_opened += 1
        return session

    def note_framing(self, session: Session) -> None:
        """The client's first bytes showed its framing (see `Session.note_framing`)."""
        self._count_framing(session, -1)
        session.note_framing()
        self._count_framing(session, 1)

    def _count_framing(self, session: Session, change: int) -> None:
        framing = session.mailbox.framing
        key = "unknown" if framing is None else framing.value
        count = self.by_framing.get(key, 0) + change
        if count:
            self.by_framing[key] = count
        else:
            del self.by_framing[key]

    def set_limits(self, limits: Limits, now: float) -> None:
        """A reload's limits, for everyone from now on: a cap lowered below what is connected
        refuses newcomers only; every connection's rate budget starts afresh (full) at the new
        rates; registered connections take the new packet size."""
        self._settings.limits = limits
        rate_limited = RateBudget.needed(limits)
        for session in self._sessions.values():
            session.budget = RateBudget(limits, now) if rate_limited else None
            if session.state is REGISTERED:
                session.decoder.set_max_packet_size(limits.max_packet_size)

    def end(
        self, session: Session, ending: Ending, reason: str, now: float, *, keep: bool = True
    ) -> None:
        """The router gives up on `session`: it leaves its group now (or, `keep`ing its
        session, its place is held), and its connection is closed (or reset) at the next
        flush; a close that has not finished `close_grace` seconds later is turned into a
        reset by the error policy's tick. `keep` False: the user has another connection in its
        place, so its session ends too."""
        was_registered = session.state is REGISTERED
        self._admission.release(session)
        session.move_to(CLOSING)
        session.closing_since = now
        self.watched[session.id] = session
        session.held = None
        if was_registered:
            if not keep:
                self.resumes.end(session)
            if not self.resumes.hold(session, now):
                self._leave(session)
        self._outbox.end(session.mailbox, ending)
        verb = "closing" if ending is Ending.CLOSE else "resetting"
        log.info("%s %s after %s", verb, session.describe(), reason)

    def resume(self, session: Session, message: bytes, now: float) -> None:
        """`session`'s first packet resumes a kept place (core/resume.py); the connection that
        had it, if it still looks open, is closed. Raise `resume_expired`."""
        old = self.resumes.resume(session, message)
        self.watched[session.id] = session  # the tick looks at it once, as at a register
        if old is not None:
            self.end(
                old, Ending.CLOSE, "its place was resumed on a newer connection", now, keep=False
            )

    def tick(self, now: float) -> None:
        """Once a second: the held places whose time is over leave their groups."""
        for place in self.resumes.due(now):
            self._leave(place)

    def end_held(self, place: HeldPlace) -> None:
        """A held place ends before its time: a newer connection of its user took its room."""
        self.resumes.end_held(place)
        self._leave(place)

    def make_room(self, session: Session, now: float) -> None:
        """Close a connection that has not registered, to admit a newer one."""
        self._counters.made_room += 1
        detail = (
            f"closed to make room for newer connections: not registered after "
            f"{now - session.opened_at:.1f} s"
        )
        self._outbox.send(session.mailbox, error_message(ErrorCode.SERVER_FULL, detail))
        self.end(session, Ending.CLOSE, "making room for a newer connection", now)

    def gone(self, session: Session, now: float) -> None:
        """The connection is gone (closed by either side): leave the group, forget it."""
        if session.state is CLOSED:
            return
        del self._sessions[session.id]
        self.watched.pop(session.id, None)
        self._count_framing(session, -1)
        self._admission.release(session)
        self._counters.connections_closed += 1
        if session.state is REGISTERED:
            if not self.resumes.hold(session, now):
                log.info("leave %s", session.describe())
                self._leave(session)
        elif session.user is None:
            log.debug("gone %s (never registered)", session.describe())
        session.held = None
        session.move_to(CLOSED)
        self._outbox.gone(session.mailbox)

    def shutdown(self, now: float) -> None:
        """The router is stopping: tell every client (`server_shutdown`, after what is queued
        for it) and close every connection at the next flush. Nobody's leaving is announced:
        everybody leaves."""
        goodbye = error_message(
            ErrorCode.SERVER_SHUTDOWN, "the router is shutting down; connect again later"
        )
        outbox = self._outbox
        for session in self._sessions.values():
            if not session.accepts_input:
                continue
            outbox.send(session.mailbox, goodbye)
            self._admission.release(session)
            self.resumes.end(session)
            self._directory.leave(session)
            session.move_to(CLOSING)
            session.closing_since = now
            self.watched[session.id] = session
            outbox.end(session.mailbox, Ending.CLOSE)

    def _leave(self, member: Member) -> None:
        user = member.user
        if user is None or member not in user.sessions:
            return  # another connection has its place (a resume)
        group = self._directory.leave(member)  # the others hear it at the end of the turn
        if group is None:
            emptied = user.group
            if emptied.pinned is None:
                log.info("group %s removed: nobody left in it", emptied.name)
            else:
                log.info("group %s is empty; it is pinned, so it stays", emptied.name)
