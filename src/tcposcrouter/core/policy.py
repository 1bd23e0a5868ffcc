"""The error policy (docs/protocol.md §4): every refusal is answered with `/oscrouter/error`,
counted by code, and logged once (a member's repeats once per episode, failed logins in the
login report); a fatal error, or any error before the register, also closes the connection.
Slow consumers are reset without a reply, and a spent rate budget is told once per episode.

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging

from ..errors import ErrorCode, RemoteError
from ..osc.messages import error_message
from .episodes import note_error
from .lifecycle import Lifecycle
from .login_report import LoginReport
from .outbox import Ending, Outbox
from .rates import RateBudget
from .session import Session, SessionState
from .settings import Settings
from .statistics import Counters

__all__ = ["ErrorPolicy"]

log = logging.getLogger("tcposcrouter.hub")

NEW, REGISTERED = SessionState.NEW, SessionState.REGISTERED

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
        outbox: Outbox,
        lifecycle: Lifecycle,
        report: LoginReport,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._lifecycle = lifecycle
        self._report = report
        self._counters = counters

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
        if session.state is NEW and code in _LOGIN_ERRORS:
            counters.count(counters.refusals, code)
            # Failed and throttled logins are summarised per address and minute (the login
            # report, logged by the timers); only an address's first in its minute gets a line.
            if code not in _REPORTED or self._report.first(session.address):
                log.info("register refused %s: %s: %s", session.describe(), code, error.detail)
        elif error.fatal or session.state is not REGISTERED:
            log.info("error %s: %s: %s", session.describe(), code, error.detail)
        else:
            note_error(session, error, now)
        # A client that never spoke has shown no framing: it gets no reply (send() skips it).
        self._outbox.send(session.mailbox, error_message(code, error.detail))
        if error.fatal or session.state is not REGISTERED:
            self._lifecycle.end(session, Ending.CLOSE, code, now)

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
        if budget.episode_pauses == 1:
            notice = RateBudget.notice(self._settings.limits)
            log.info("%s: %s", session.describe(), notice)
            if session.state is REGISTERED:
                counters.count(counters.errors, notice.code)
                self._outbox.send(session.mailbox, error_message(notice.code, notice.detail))
