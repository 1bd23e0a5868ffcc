"""What the hub does once a second (docs/protocol.md §4): register and idle timeouts, closes
that took longer than `close_grace` turned into resets, the ends of error episodes and of
rate-limit episodes, and the login report.

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging

from .episodes import ERROR_EPISODE_SECONDS, end_episodes
from .login import Login
from .outbox import Outbox
from .policy import ErrorPolicy
from .session import Session, SessionState, overdue
from .settings import Settings

__all__ = ["Timers"]

log = logging.getLogger("tcposcrouter.hub")


class Timers:
    def __init__(
        self,
        settings: Settings,
        sessions: dict[int, Session],
        outbox: Outbox,
        errors: ErrorPolicy,
        login: Login,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._outbox = outbox
        self._errors = errors
        self._login = login

    def tick(self, now: float) -> None:
        limits = self._settings.limits
        grace = limits.close_grace
        for session in list(self._sessions.values()):
            if session.state is SessionState.CLOSING:
                if grace and now - session.closing_since >= grace:
                    self._outbox.reset(session.mailbox)
                continue
            reason = overdue(session, limits, now)
            if reason is not None:
                self._errors.refuse(session, reason, now)
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
        login = self._login
        for line in login.report.due(now):
            log.warning("%s", line)
        login.throttle.forget_old(now)
