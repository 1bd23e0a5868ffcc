"""A place kept through a drop (docs/protocol.md §14): a member's session, its numbered packets,
the place held when its connection ends, and the resume that takes it back.

A member that asks (`/oscrouter/session ,i seconds`) gets a token, and from then on every packet
the router queues for it is numbered and kept (`Resumable`, hooked into its mailbox: see
core/outbox.py) until the client acknowledges it. When its connection ends, its place is
*held* (`HeldPlace`): it stays in the group's user list, and what it would have received is
numbered and kept the same way. A new connection that resumes with the token and the last
number it has takes the place back and is sent the rest, then live traffic. Past the seconds
granted, or the bytes kept past their bound, the place ends and the user leaves as if its
connection had just ended.

A held place counts as a member of its address for the per-address cap: a NAT's places are
bounded like its connections.

Pure code: the caller passes the time.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque

from ..errors import ErrorCode, RemoteError
from ..osc.framing import Framing
from ..osc.messages import message_address
from ..osc.resume import (
    SESSION_ACK,
    bad_session,
    message_count,
    read_ack,
    read_resume,
    read_session_request,
    resumed_message,
    session_reply,
)
from .admission import Admission
from .directory import Member, User
from .outbox import Mailbox, Outbox
from .session import Session, SessionState
from .settings import Settings
from .statistics import Counters

__all__ = ["HeldPlace", "Resumable", "Resumes"]

log = logging.getLogger("tcposcrouter.hub")

# 144 random bits, in 24 URL-safe characters: a client may show it in a URL (the browser's).
TOKEN_BYTES = 18


class Resumable:
    """One member's session: its token, the seconds its place is kept, and its packets numbered
    from 1, kept from `acked + 1` to `sent` while their bytes stay within `limit`. A session
    that counts messages (`counts` is not None) numbers each message in a packet, and keeps
    how many each kept packet holds: acknowledged and resumed at packet boundaries."""

    __slots__ = (
        "acked",
        "counts",
        "group",
        "held",
        "kept",
        "kept_bytes",
        "limit",
        "lost",
        "member",
        "seconds",
        "sent",
        "token",
    )

    def __init__(
        self,
        token: str,
        group: str,
        seconds: int,
        limit: int,
        member: Member,
        by_messages: bool = False,
    ) -> None:
        self.token = token
        self.group = group
        self.seconds = seconds
        self.limit = limit
        self.sent = 0  # the number of the last packet numbered
        self.acked = 0  # the client has every packet up to this one: forgotten
        self.kept: deque[bytes] = deque()  # packets acked + 1 … sent, unless `lost`
        self.kept_bytes = 0
        # More than `limit` bytes went unacknowledged: nothing is kept, and no resume is
        # possible until the client acknowledges everything sent.
        self.lost = False
        self.member = member  # the connection or held place that has it
        self.held: HeldPlace | None = None
        self.counts: deque[int] | None = deque() if by_messages else None

    def add(self, packet: bytes) -> bool:
        """Number and keep `packet` (the outbox's hot path); True while held."""
        counts = self.counts
        count = 1 if counts is None else message_count(packet)
        self.sent += count
        if not self.lost:
            size = self.kept_bytes + len(packet)
            if size > self.limit:
                self._lose()
            else:
                self.kept.append(packet)
                self.kept_bytes = size
                if counts is not None:
                    counts.append(count)
        return self.held is not None

    def add_run(self, packets: list[bytes]) -> bool:
        for packet in packets:
            self.add(packet)
        return self.held is not None

    def _lose(self) -> None:
        self.lost = True
        self.kept.clear()
        self.kept_bytes = 0
        if self.counts is not None:
            self.counts.clear()

    def ack(self, received: int) -> None:
        """The client has every packet up to `received`: forget them."""
        if received > self.sent:
            raise bad_session(f"acknowledged {received}, but only {self.sent} were sent")
        if received <= self.acked:
            return
        if self.lost:
            if received == self.sent:  # everything is in: resumable again from here
                self.lost = False
            self.acked = received
            return
        kept, counts = self.kept, self.counts
        if counts is None:
            for _ in range(received - self.acked):
                self.kept_bytes -= len(kept.popleft())
            self.acked = received
            return
        # Messages: forget the packets all of whose messages the client has.
        while counts and self.acked + counts[0] <= received:
            self.acked += counts.popleft()
            self.kept_bytes -= len(kept.popleft())

    def since(self, received: int) -> list[bytes] | None:
        """The packets numbered above `received`, or None when the router does not have them
        all (or `received` is more than it sent, or falls inside a packet)."""
        if self.lost or not self.acked <= received <= self.sent:
            return None
        counts = self.counts
        if counts is None:
            return list(itertools.islice(self.kept, received - self.acked, None))
        at, skip = self.acked, 0
        for count in counts:
            if at >= received:
                break
            at += count
            skip += 1
        if at != received:
            return None
        return list(itertools.islice(self.kept, skip, None))


class HeldPlace:
    """A member whose connection ended while its session was on: in the group without a
    connection, its packets kept in a mailbox that writes nowhere, until `until`."""

    __slots__ = ("address", "id", "last_seen", "mailbox", "peer", "resumable", "until", "user")

    def __init__(self, session: Session, mailbox: Mailbox, until: float, resumable: Resumable):
        self.id = session.id
        self.peer = session.peer
        self.address = session.address
        self.last_seen = session.last_seen
        self.user = session.user
        self.mailbox = mailbox
        self.until = until
        self.resumable = resumable

    @property
    def accepts_input(self) -> bool:
        return False  # no connection

    @property
    def framing(self) -> Framing | None:
        return self.mailbox.framing

    def describe(self) -> str:
        user = self.user
        assert user is not None
        return f"{user.name}@{user.group.name} [{self.peer}, held]"


class _Nowhere:
    """The sink of a held place's mailbox: nothing is queued for it (its packets are kept), so
    nothing arrives here."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        pass


_NOWHERE = _Nowhere()


class Resumes:
    """Every session of this router: by token, and the places held."""

    def __init__(
        self, settings: Settings, outbox: Outbox, admission: Admission, counters: Counters
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._admission = admission
        self._counters = counters
        self._by_token: dict[str, Resumable] = {}
        self.held: dict[str, HeldPlace] = {}  # by token

    # -- a member's requests ----------------------------------------------------------------

    def handle(self, session: Session, message: bytes) -> None:
        """`/oscrouter/session` or `/oscrouter/session/ack` from a member; raise the refusal."""
        box = session.mailbox
        resumable = _resumable(box)
        if message_address(message) == SESSION_ACK:
            if resumable is None:
                raise bad_session("no session to acknowledge: ask /oscrouter/session first")
            resumable.ack(read_ack(message))
            return
        asked = read_session_request(message)
        seconds = min(asked.seconds, self._settings.limits.max_session_seconds)
        if not seconds:
            if resumable is not None:
                self._forget(resumable)
            self._outbox.send_unnumbered(box, [session_reply("", 0)])
            return
        if resumable is None:
            user = session.user
            assert user is not None
            token = secrets.token_urlsafe(TOKEN_BYTES)
            limit = self._settings.limits.max_session_bytes
            resumable = Resumable(
                token, user.group.name, seconds, limit, session, asked.by_messages
            )
            self._by_token[token] = resumable
            log.info("session for %s: its place kept %d s", session.describe(), seconds)
        elif asked.by_messages != (resumable.counts is not None):
            raise bad_session("a session keeps counting what it counted first")
        resumable.seconds = seconds
        # The reply is not numbered; everything after it is.
        self._outbox.send_unnumbered(box, [session_reply(resumable.token, seconds)])
        box.kept = resumable

    # -- the connection ends: its place is held ---------------------------------------------

    def hold(self, session: Session, now: float) -> bool:
        """`session`'s connection ends while it is a member: hold its place if its session
        can be resumed (True); else its session ends with it (False)."""
        box = session.mailbox
        resumable = _resumable(box)
        if resumable is None:
            return False
        user = session.user
        if resumable.lost or user is None:
            self._forget(resumable)
            return False
        held_box = self._outbox.mailbox(_NOWHERE, box.framing, session.id)
        held_box.list_version = box.list_version
        held_box.tempo_relative = box.tempo_relative
        place = HeldPlace(session, held_box, now + resumable.seconds, resumable)
        box.kept = None
        held_box.kept = resumable
        resumable.held = place
        resumable.member = place
        _take_place(user, session, place)
        self._admission.hold(place.address)
        self.held[resumable.token] = place
        self._counters.places_held += 1
        log.info("%s dropped: its place is kept %d s", session.describe(), resumable.seconds)
        return True

    def due(self, now: float) -> list[HeldPlace]:
        """The places whose seconds are over, or whose kept bytes passed their bound: they end
        now (forgotten here; the caller takes them out of their group)."""
        ended = [
            place for place in self.held.values() if now >= place.until or place.resumable.lost
        ]
        for place in ended:
            why = "bytes" if place.resumable.lost else "seconds"
            log.info("%s: its place ended, its kept %s over", place.describe(), why)
            self._forget(place.resumable)
        return ended

    # -- a new connection takes it back -----------------------------------------------------

    def resume(self, session: Session, message: bytes) -> Session | None:
        """`/oscrouter/session/resume` as the first packet of `session`: give it the place and
        send it what it missed. Return the connection that had the place until now, for the
        caller to close (None: the place was held); raise `resume_expired`."""
        request = read_resume(message)
        resumable = self._by_token.get(request.token)
        missed = None
        if resumable is not None and resumable.group == request.group:
            missed = resumable.since(request.received)
        if resumable is None or missed is None:
            raise RemoteError(
                ErrorCode.RESUME_EXPIRED,
                "no place to resume with that token and number (unknown, ended, or "
                "packets no longer kept): register instead",
            )
        old = resumable.member
        user = old.user
        assert user is not None
        self._admission.checking(session)
        self._admission.registered(session)
        session.move_to(SessionState.REGISTERED)
        session.decoder.set_max_packet_size(self._settings.limits.max_packet_size)
        box = session.mailbox
        box.list_version = old.mailbox.list_version
        box.tempo_relative = old.mailbox.tempo_relative
        old.mailbox.kept = None
        _take_place(user, old, session)
        place = resumable.held
        if place is not None:
            del self.held[resumable.token]
            self._admission.unhold(place.address)
            resumable.held = None
        resumable.member = session
        resumable.ack(request.received)
        outbox = self._outbox
        outbox.send_unnumbered(box, [resumed_message(request.received), *missed])
        box.kept = resumable
        self._counters.resumes += 1
        log.info(
            "resume %s: %d packets sent again%s",
            session.describe(),
            len(missed),
            "" if place is not None else ", its old connection closed",
        )
        return old if isinstance(old, Session) else None

    def end(self, session: Session) -> None:
        """`session` leaves for good (the router stops, a newer connection of its user takes
        its place): its session ends with it."""
        resumable = _resumable(session.mailbox)
        if resumable is not None:
            self._forget(resumable)

    def end_held(self, place: HeldPlace) -> None:
        """`place` ends now (its user came back on a new connection without resuming): its
        session ends; the caller takes it out of its group."""
        log.info("%s: its place ended, its user registered anew", place.describe())
        self._forget(place.resumable)

    def _forget(self, resumable: Resumable) -> None:
        self._by_token.pop(resumable.token, None)
        self.held.pop(resumable.token, None)
        resumable.member.mailbox.kept = None
        if resumable.held is not None:
            self._admission.unhold(resumable.held.address)


def _resumable(box: Mailbox) -> Resumable | None:
    kept = box.kept
    assert kept is None or isinstance(kept, Resumable)
    return kept


def _take_place(user: User, old: Member, new: Member) -> None:
    """`new` is `user`'s connection where `old` was, unseen by the others: no list changes,
    only who receives (the receivers' lists are built again) and who follows the state."""
    sessions = user.sessions
    sessions[sessions.index(old)] = new
    new.user = user
    group = user.group
    for member in group.users.values():
        member.forget_receivers()
    state = group.state
    if state is not None and old.mailbox in state.followers:
        state.followers.discard(old.mailbox)
        state.followers.add(new.mailbox)
