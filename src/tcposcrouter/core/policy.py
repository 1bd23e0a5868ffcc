"""The error policy (docs/protocol.md §4): every refusal is answered with `/oscrouter/error`,
counted by code, and logged once (failed logins in the login report; a member's repeats of one
error once per *episode*: counted, and logged as one line with their count once the connection
has been quiet about it for `ERROR_EPISODE_SECONDS`, so a client stuck sending something wrong
fills no disk); a fatal error, or any error before the register, also closes the connection.
Slow consumers are reset without a reply, and a spent rate budget is told once per episode.

Once a second (`tick`), what time decides: register and idle timeouts, closes that took longer
than `close_grace` turned into resets, the ends of error and rate-limit episodes.

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode, RemoteError
from ..osc.messages import error_message
from .lifecycle import Lifecycle
from .login_report import LoginReport
from .outbox import Ending, Outbox
from .rates import RateBudget
from .session import UNREGISTERED, ErrorEpisode, Session, SessionState, overdue
from .settings import Settings
from .statistics import Counters

__all__ = ["ERROR_EPISODE_SECONDS", "ErrorPolicy", "end_episodes"]

log = logging.getLogger("tcposcrouter.hub")

REGISTERED = SessionState.REGISTERED
# Refusals of a connection that has not joined: its register's, or the router's when full.
_NOT_JOINED = UNREGISTERED | {SessionState.REGISTERING}

# An episode of one repeated error on one connection ends after this many quiet seconds; its
# repeats are then logged as one line with their count.
ERROR_EPISODE_SECONDS = 10.0
# Members the idle timeout's check looks at per tick (about a microsecond each): a router of up
# to this many is checked every second, a crowd of 20,000 every 10 s.
IDLE_CHECKS_PER_TICK = 2_000

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


class ErrorPolicy:
    def __init__(
        self,
        settings: Settings,
        sessions: dict[int, Session],
        outbox: Outbox,
        lifecycle: Lifecycle,
        report: LoginReport,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._sessions = sessions  # the hub's, by id: every connection not gone
        self._outbox = outbox
        self._lifecycle = lifecycle
        self._report = report
        self._counters = counters
        self._idle_queue: list[Session] = []  # the members the idle check has still to see

    def watch(self, session: Session) -> None:
        """`session` has an episode open: the tick looks at it until the episode ends."""
        if session.accepts_input:
            self._lifecycle.watched[session.id] = session

    def refuse(self, session: Session, error: RemoteError, now: float) -> None:
        """Send the error reply; close the connection when the error, or the state, says so.
        The shell calls it too, for what its transport refuses with a reply (a WebSocket text
        message, which is no OSC packet)."""
        if not session.accepts_input:
            return  # already given up on: nothing more to say
        counters = self._counters
        code = error.code
        counters.count(counters.errors, code)
        if code == ErrorCode.PACKET_INVALID:
            counters.count(counters.drops, code)
        if session.state in _NOT_JOINED and code in _LOGIN_ERRORS:
            counters.count(counters.refusals, code)
            # Failed and throttled logins are summarised per address and minute (the login
            # report, logged by `Registers.tick`); only an address's first in its minute gets
            # a line.
            if code not in _REPORTED or self._report.first(session.address):
                log.info("register refused %s: %s: %s", session.describe(), code, error.detail)
        elif error.fatal or session.state is not REGISTERED:
            log.info("error %s: %s: %s", session.describe(), code, error.detail)
        else:
            _note_episode(session, error, now)
            self.watch(session)
        # A client that never spoke has shown no framing: it gets no reply (send() skips it).
        self._outbox.send(session.mailbox, error_message(code, error.detail))
        # Any error before the register closes the connection, but a failed resume: its
        # client registers on it instead (docs/protocol.md §14).
        if error.fatal or (session.state is not REGISTERED and code != ErrorCode.RESUME_EXPIRED):
            # A member silent past the idle timeout keeps its place if it has a session (its
            # network may be the one that went quiet); one closed for what it sent does not.
            keep = code == ErrorCode.IDLE_TIMEOUT
            self._lifecycle.end(session, Ending.CLOSE, code, now, keep=keep)

    def count(self, session: Session, code: str, detail: str) -> None:
        """The shell's transport refused what `session` sent and closes the connection itself
        (a WebSocket frame too large or broken): count and log it; nothing can be sent."""
        if not session.accepts_input:
            return
        self._counters.count(self._counters.errors, code)
        log.info("error %s: %s: %s", session.describe(), code, detail)

    def slow_consumer(self, session: Session, buffered: int, now: float) -> None:
        """The shell saw more than `max_output_buffer` bytes waiting for `session`: reset it at
        once, without waiting for its buffer to drain (that is what it cannot do). Its error
        reply would only queue behind what it does not read, so it gets none; the log line and
        the counter say what happened."""
        if not session.accepts_input:
            return
        counters = self._counters
        counters.slow_consumer_resets += 1
        counters.count(counters.errors, ErrorCode.SLOW_CONSUMER)
        log.info(
            "error %s: %s: %d bytes waiting to be read, more than the limit of %d",
            session.describe(),
            ErrorCode.SLOW_CONSUMER,
            buffered,
            self._settings.limits.max_output_buffer,
        )
        self._lifecycle.end(session, Ending.RESET, ErrorCode.SLOW_CONSUMER, now)

    def rate_paused(self, session: Session, budget: RateBudget) -> None:
        """The connection spent more than its budget: count the pause; the first of an episode
        is logged and, for a member, answered (once, not per pause)."""
        counters = self._counters
        counters.rate_limit_pauses += 1
        self.watch(session)
        if budget.episode_pauses == 1:
            notice = RateBudget.notice(self._settings.limits)
            log.info("%s: %s", session.describe(), notice)
            if session.state is REGISTERED:
                counters.count(counters.errors, notice.code)
                self._outbox.send(session.mailbox, error_message(notice.code, notice.detail))

    def gone(self, session: Session, now: float) -> None:
        """The connection is gone: the repeats still counted are logged."""
        end_episodes(session, now, 0.0)

    def tick(self, now: float) -> None:
        """Once a second: timeouts, closes overdue, the ends of episodes. Only the connections
        that can have one are looked at (`Lifecycle.watched`), and, with an idle timeout, a
        slice of the members (`IDLE_CHECKS_PER_TICK`): twenty thousand quiet members must not
        hold the loop for tens of milliseconds every second."""
        limits = self._settings.limits
        grace = limits.close_grace
        watched = self._lifecycle.watched
        for session in list(watched.values()):
            if session.state is SessionState.CLOSED:
                del watched[session.id]
                continue
            if session.state is SessionState.CLOSING:
                if grace and now - session.closing_since >= grace:
                    self._outbox.reset(session.mailbox)
                continue
            reason = overdue(session, limits, now)
            if reason is not None:
                self.refuse(session, reason, now)
                continue
            if session.quiet is not None:
                end_episodes(session, now, ERROR_EPISODE_SECONDS)
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
            if (
                session.state is REGISTERED
                and session.quiet is None
                and (budget is None or not budget.episode_pauses)
            ):
                del watched[session.id]  # nothing more to look at until something happens
        if limits.idle_timeout:
            self._check_idle(now)

    def _check_idle(self, now: float) -> None:
        """Members silent for `idle_timeout`, a slice a tick: each is looked at every second
        up to IDLE_CHECKS_PER_TICK members, and every n/IDLE_CHECKS_PER_TICK seconds above."""
        limits = self._settings.limits
        if not self._idle_queue:
            self._idle_queue = list(self._sessions.values())
        queue = self._idle_queue
        for _ in range(min(IDLE_CHECKS_PER_TICK, len(queue))):
            session = queue.pop()
            if session.state is REGISTERED:
                reason = overdue(session, limits, now)
                if reason is not None:
                    self.refuse(session, reason, now)


def _note_episode(session: Session, error: RemoteError, now: float) -> None:
    """A non-fatal error of a member: its first in an episode is logged, repeats counted."""
    quiet = session.quiet
    if quiet is None:
        quiet = session.quiet = {}
    episode = quiet.get(error.code)
    if episode is None:
        quiet[error.code] = ErrorEpisode(now)
        log.info("error %s: %s: %s", session.describe(), error.code, error.detail)
    else:
        episode.count += 1
        episode.last = now


def end_episodes(session: Session, now: float, quiet_for: float) -> None:
    """Log and forget the episodes of `session` that have been quiet for `quiet_for` seconds
    (0: all of them, as its connection is gone)."""
    quiet = session.quiet
    if quiet is None:
        return
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
