"""The register pipeline: a register's password check is started, what the connection sends
meanwhile is held in order, the check runs (at once when it needs no scrypt: keyed hashes,
core/auth.py; else the shell runs it in a worker thread, or through the cluster's store, and
hands it back), and the outcome joins the connection, or refuses it (docs/protocol.md §3, §6).

Pure code: the caller passes the time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..errors import ErrorCode, RemoteError
from ..osc.framing import InvalidFrame
from .admission import Admission
from .control import ControlMessages
from .directory import Member, User
from .lifecycle import Lifecycle
from .login import Login, PasswordCheck
from .outbox import Ending
from .policy import ErrorPolicy
from .session import Session
from .statistics import Counters

__all__ = ["WAIT_FOR_CHECK", "Registrations"]

# What `Hub.receive` and `Registrations.finished` return while a register's passwords are being
# checked: stop reading until `finished` says otherwise.
WAIT_FOR_CHECK = math.inf

# Hands the packets held behind a register to the hub's packet loop, once it has joined.
Route = Callable[[Session, Sequence[bytes | InvalidFrame], float], None]


class Registrations:
    def __init__(
        self,
        sessions: dict[int, Session],
        login: Login,
        controls: ControlMessages,
        admission: Admission,
        lifecycle: Lifecycle,
        errors: ErrorPolicy,
        counters: Counters,
        route: Route,
    ) -> None:
        self._sessions = sessions
        self._login = login
        self._controls = controls
        self._admission = admission
        self._lifecycle = lifecycle
        self._errors = errors
        self._counters = counters
        self._route = route
        self._checks: list[PasswordCheck] = []  # for the shell to run
        self._ran: list[PasswordCheck] = []  # run at once, to be finished (`finish_ran`)

    # -- the shell's side ------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether checks wait to be taken."""
        return bool(self._checks)

    def take(self) -> list[PasswordCheck]:
        """The password checks to run, each once, in a worker thread: call `run()`, then
        `finished` with it."""
        checks, self._checks = self._checks, []
        return checks

    def finished(self, check: PasswordCheck, now: float) -> float:
        """A check from `take` has run: register its connection, or refuse it. Return how long
        to stop reading from that connection, as `Hub.receive` does."""
        session = check.session
        login = self._login
        # A refusal ends the session, and ending (or closing) it forgets what waited behind it.
        try:
            joining = login.complete(check, now)
        except RemoteError as error:
            self._errors.refuse(session, error, now)
            return 0.0
        if not session.accepts_input:  # closed while its check ran
            return 0.0
        if joining is None:  # others changed the group meanwhile: check against what is there
            self._counters.checks_repeated += 1
            try:
                self.start(session, login.prepare(session, check.request, now))
            except RemoteError as error:
                self._errors.refuse(session, error, now)
                return 0.0
            return WAIT_FOR_CHECK
        session.checking = False
        held, session.held = session.held, None
        twin = None
        if not self._admission.room_for_member(session.address):
            twin = self._silent_twin(session, joining.user)
            if twin is None:
                detail = (
                    f"{self._admission.members_from(session.address)} registered connections "
                    "from your address"
                )
                full = RemoteError(ErrorCode.SERVER_FULL, detail, fatal=True)
                self._errors.refuse(session, full, now)
                return 0.0
        self._admission.registered(session)
        self._controls.join(session, check.request, joining)
        if twin is not None:  # after the join, so that the user itself never leaves
            self._counters.replaced += 1
            reason = "a newer connection of the same user took its place"
            self._lifecycle.end(twin, Ending.CLOSE, reason, now)
        if held:
            self._route(session, held, now)
        if session.checking:
            return WAIT_FOR_CHECK
        return max(0.0, session.paused_until - now)

    def refused(self, check: PasswordCheck, error: RemoteError, now: float) -> None:
        """The shell could not finish `check` (in cluster mode: the store is unavailable):
        refuse its connection with `error`; no password was wrong, so nothing is counted."""
        self._login.release(check, now)
        self._errors.refuse(check.session, error, now)

    # -- the packet loop's side --------------------------------------------------------------

    def start(self, session: Session, check: PasswordCheck) -> None:
        session.checking = True
        if session.held is None:
            session.held = []
        self._admission.checking(session)
        self._counters.password_checks += 1
        if not self._login.hashes_shared and check.run_quickly():
            self._ran.append(check)
        else:
            self._checks.append(check)

    def finish_ran(self, now: float) -> float:
        """Finish the checks `start` ran at once (those of the read being handled), as the
        shell's `finished` would: return how long to stop reading from that connection."""
        pause = 0.0
        while self._ran:
            pause = self.finished(self._ran.pop(0), now)
        return pause

    @staticmethod
    def hold(session: Session, later: Sequence[bytes | InvalidFrame]) -> None:
        """What came after a register whose check has started waits for its outcome, in order."""
        held = session.held
        assert held is not None
        held.extend(later)

    def _silent_twin(self, session: Session, user: User | None) -> Session | None:
        """The connection of `user` from `session`'s address that has been silent longest: the
        one a returning user replaces when its address has no room (docs/protocol.md §6)."""
        if user is None:
            return None
        twins: list[Member] = [
            s for s in user.sessions if s.address == session.address and s.accepts_input
        ]
        twin = min(twins, key=lambda s: s.last_seen, default=None)
        return None if twin is None else self._sessions[twin.id]
