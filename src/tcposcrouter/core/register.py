"""The register, both halves, in one place (docs/protocol.md §3 and §6).

A connection moves NEW > REGISTERING > REGISTERED (core/session.py) in three steps:

1. `Registers.begin`, on the event loop, from the hub's packet loop: read the register, apply
   the operator's rules and the sizes, claim a password check from the failed-login throttle;
   the connection moves to REGISTERING, and what it sends meanwhile waits in `session.held`
   (`hold`), in order.
2. The passwords are checked (`PasswordCheck.run`). With keyed digests (core/auth.py) that is
   cheap: `begin` runs it at once and the hub finishes it in the same read. With scrypt, or
   through a cluster's store, the shell takes it (`take`), runs it in a worker thread or a
   store round, and hands it back to the hub.
3. `Registers.finish`, on the event loop: look at the directory again (other registers may have
   changed it meanwhile: then check again), settle the throttle, make room at the address,
   join the group, reply and announce; the held packets go back to the hub, which routes them
   as any member's. Or refuse the connection.

Pure code: the caller passes the time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.framing import InvalidFrame
from ..osc.messages import RegisterRequest, build_message, read_register
from .admission import Admission
from .auth import PasswordHash
from .directory import Directory, Group, Member, User, tell_user_list
from .lifecycle import Lifecycle
from .login_report import LoginReport
from .outbox import Ending, Outbox
from .policy import ErrorPolicy
from .resume import HeldPlace
from .session import Session, SessionState
from .settings import Settings
from .state import GroupState, tell_state
from .statistics import Counters
from .tempo import Timeline, tell_tempo
from .throttle import LoginThrottle

__all__ = ["Joining", "PasswordCheck", "Registers"]

log = logging.getLogger("tcposcrouter.hub")

REGISTERING, REGISTERED = SessionState.REGISTERING, SessionState.REGISTERED

Held = list[bytes | InvalidFrame]


class Registers:
    """Every register in flight: begun, checked, finished."""

    def __init__(
        self,
        settings: Settings,
        sessions: dict[int, Session],
        directory: Directory,
        outbox: Outbox,
        admission: Admission,
        lifecycle: Lifecycle,
        errors: ErrorPolicy,
        report: LoginReport,
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._directory = directory
        self._outbox = outbox
        self._admission = admission
        self._lifecycle = lifecycle
        self._errors = errors
        self._counters = counters
        limits = settings.limits
        self.throttle = LoginThrottle(
            limits.login_failures_allowed,
            limits.login_max_delay,
            limits.login_accounts_per_address,
        )
        self.report = report
        # Called with (address, group, user) of every failed password check (a cluster shares
        # them, see ClusterPort.subscribe_login_failures).
        self.failure_listeners: list[Callable[[str, str, str], None]] = []
        # In a cluster (ClusterPort.connect), hashes go through the shared store: every
        # register makes its own, with scrypt. Else new hashes are keyed digests.
        self.hashes_shared = False
        self._for_the_shell: list[PasswordCheck] = []  # to run in a worker thread
        self._ran: PasswordCheck | None = None  # run at once by `begin`, for the hub to finish

    def set_limits(self, limits: Limits) -> None:
        self.throttle.set_limits(
            limits.login_failures_allowed,
            limits.login_max_delay,
            limits.login_accounts_per_address,
        )

    def tick(self, now: float) -> None:
        """Once a second: the login report's lines that are due; the throttle forgets old
        records."""
        for line in self.report.due(now):
            log.warning("%s", line)
        self.throttle.forget_old(now)

    # -- 1. begin --------------------------------------------------------------------------

    def begin(self, session: Session, message: bytes, now: float) -> None:
        """A register arrived from `session`: start its password check, or raise its refusal.
        The hub holds what follows it in the read (`hold`) and then calls `take_ran`."""
        if session.state is REGISTERED:
            raise RemoteError(ErrorCode.ALREADY_REGISTERED, "this connection is already registered")
        request = read_register(message)
        check = self._prepare(session, request, now)
        self._admission.checking(session)
        session.move_to(REGISTERING)
        session.held = []
        if self._run_at_once(check):
            self._ran = check
        else:
            self._for_the_shell.append(check)

    def _prepare(self, session: Session, request: RegisterRequest, now: float) -> PasswordCheck:
        """The password check a register needs; raise its refusal if it cannot pass anyway."""
        group = self._directory.groups.get(request.group)
        self._check_rules(request, group)
        self._check_sizes(request, group)
        user = None if group is None else group.users.get(request.user)
        # A group that exists, here or (in a cluster) on another node, has a password to guess
        # at; a new group's first register has none.
        claimed = False
        if group is not None:
            wait = self.throttle.claim(session.address, (request.group, request.user), now)
            if wait > 0:
                self.report.throttled(session.address, now)
                raise RemoteError(
                    ErrorCode.LOGIN_THROTTLED,
                    f"too many failed logins as {request.user} in group {request.group}; "
                    f"try again in {max(1.0, wait):.0f} s",
                    fatal=True,
                )
            claimed = True
        return PasswordCheck(session, request, group, user, claimed, keyed=not self.hashes_shared)

    def _run_at_once(self, check: PasswordCheck) -> bool:
        self._counters.password_checks += 1
        return not self.hashes_shared and check.run_quickly()

    @staticmethod
    def hold(session: Session, later: Sequence[bytes | InvalidFrame]) -> None:
        """What came after a register whose check has started waits for its outcome, in order."""
        held = session.held
        assert held is not None
        held.extend(later)

    # -- 2. the check, where the shell runs it ---------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether checks wait for the shell to take them."""
        return bool(self._for_the_shell)

    def take(self) -> list[PasswordCheck]:
        """The password checks to run, each once, in a worker thread (or a cluster's store
        round): call `run()`, then hand it to `Hub.checked` on the event loop."""
        checks, self._for_the_shell = self._for_the_shell, []
        return checks

    def take_ran(self) -> PasswordCheck | None:
        """The check `begin` ran at once in the read being handled: the hub finishes it."""
        check, self._ran = self._ran, None
        return check

    def refused(self, check: PasswordCheck, error: RemoteError, now: float) -> None:
        """The shell could not finish `check` (in a cluster: the store is unavailable): refuse
        its connection with `error`; no password was wrong, so the throttle forgets the claim."""
        if check.claimed:
            request = check.request
            self.throttle.released(check.session.address, (request.group, request.user), now)
            check.claimed = False
        self._errors.refuse(check.session, error, now)

    # -- 3. finish -------------------------------------------------------------------------

    def finish(self, check: PasswordCheck, now: float) -> Held | None:
        """`check` has run: join its connection to its group, or refuse it. Return the packets
        held behind the register, for the hub to route, once it has joined; None when it has
        not (refused, gone meanwhile, or being checked again in the shell)."""
        session = check.session
        while True:
            try:
                joining = self._outcome(check, now)
                if not session.accepts_input:  # closed while its check ran
                    return None
                if joining is not None:
                    break
                # Others changed the group meanwhile: check against what is there now.
                self._counters.checks_repeated += 1
                check = self._prepare(session, check.request, now)
            except RemoteError as error:
                self._errors.refuse(session, error, now)
                return None
            if not self._run_at_once(check):
                self._for_the_shell.append(check)
                return None
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
                return None
        self._join(session, check.request, joining, now, check.ensemble)
        if twin is not None:  # after the join, so that the user itself never leaves
            self._counters.replaced += 1
            if isinstance(twin, HeldPlace):
                self._lifecycle.end_held(twin)
            else:
                reason = "a newer connection of the same user took its place"
                self._lifecycle.end(twin, Ending.CLOSE, reason, now, keep=False)
        return held

    def _outcome(self, check: PasswordCheck, now: float) -> Joining | None:
        """What a finished check joins, or None when the directory changed under it and it
        must be prepared again. Raise the refusal."""
        request = check.request
        address = check.session.address
        account = (request.group, request.user)
        if check.claimed:
            if check.group_ok and check.user_ok:
                self.throttle.succeeded(address, account, now)
            else:
                self.throttle.failed(address, account, now)
                self.report.failed(address, account, now)
                for listener in self.failure_listeners:
                    listener(address, request.group, request.user)
        if not check.group_ok:
            raise _auth_failed(f"wrong password for group {request.group}")
        if not check.user_ok:
            raise _auth_failed(f"wrong password for user {request.user} in group {request.group}")
        group = self._directory.groups.get(request.group)
        user = None if group is None else group.users.get(request.user)
        joining = Joining(group, user, check.new_group_hash, check.new_user_hash)
        if (
            group is not check.group
            or user is not check.user
            or (group is not None and group.password is not check.group_hash)
            or (user is None and _pinned_hash(group, request.user) is not check.pinned_user_hash)
        ):
            changed = _made_meanwhile(check, group, user)
            if changed is None:
                return None
            joining = changed
        self._check_rules(request, group)
        self._check_sizes(request, group)
        return joining

    def _join(
        self,
        session: Session,
        request: RegisterRequest,
        joining: Joining,
        now: float,
        ensemble: tuple[Timeline, GroupState] | None = None,
    ) -> None:
        """Register `session` as `_outcome` allowed: join, reply, announce."""
        created = joining.group is None
        self._admission.registered(session)
        user = self._directory.join(
            session, request.group, request.user, joining.group_hash, joining.user_hash
        )
        if created:
            log.info("group %s created by %s", request.group, session.peer)
        session.move_to(REGISTERED)
        session.decoder.set_max_packet_size(self._settings.limits.max_packet_size)
        self._counters.registrations += 1
        log.info("register %s (connection %d of this user)", session.describe(), len(user.sessions))
        # The path form first: it is what the SuperCollider client waits for (docs/protocol.md §6).
        outbox, mailbox = self._outbox, session.mailbox
        outbox.send(mailbox, build_message(request.reply_address()))
        reply = build_message("/oscrouter/register", ("s", request.user), request.random_id)
        outbox.send(mailbox, reply)
        group = user.group
        if ensemble is not None and group.timeline is None:  # the first copy here
            group.timeline, group.state = ensemble
        # Its own list right after the reply, then the group's tempo and state; the others'
        # lists at the end of the turn (directory).
        tell_user_list(outbox, user.group, [mailbox])
        tell_tempo(outbox, self._settings, user.group, now, [mailbox])
        tell_state(outbox, user.group, mailbox)

    def _silent_twin(self, session: Session, user: User | None) -> Session | HeldPlace | None:
        """The connection of `user` from `session`'s address that has been silent longest, or
        its place held after a drop: the one a returning user replaces when its address has no
        room (docs/protocol.md §6, §14)."""
        if user is None:
            return None
        address = session.address
        held = [s for s in user.sessions if s.address == address and isinstance(s, HeldPlace)]
        if held:
            return held[0]
        twins: list[Member] = [s for s in user.sessions if s.address == address and s.accepts_input]
        twin = min(twins, key=lambda s: s.last_seen, default=None)
        return None if twin is None else self._sessions[twin.id]

    # -- the rules, at both ends -----------------------------------------------------------

    def _check_rules(self, request: RegisterRequest, group: Group | None) -> None:
        """The operator's rules: no new groups on a closed server, only listed users in a
        pinned group that lists them. Refused as `auth_failed`, never counted as a guess: the
        client has the wrong name, not the wrong password, and the reason says so."""
        if group is None or group.password is None:
            if not self._directory.rules.allow_new_groups:
                raise _auth_failed(
                    f"no group {request.group} on this router, and it does not create new "
                    "groups: check the group name"
                )
        elif (
            group.pinned is not None
            and not group.pinned.admits(request.user)
            and request.user not in group.users
        ):
            raise _auth_failed(
                f"group {request.group} admits only its listed users, and "
                f"{request.user} is not one of them"
            )

    def _check_sizes(self, request: RegisterRequest, group: Group | None) -> None:
        limits = self._settings.limits
        if group is None:
            if limits.max_groups and len(self._directory.groups) >= limits.max_groups:
                raise RemoteError(
                    ErrorCode.SERVER_FULL,
                    f"the router has {len(self._directory.groups)} groups",
                    fatal=True,
                )
        elif request.user not in group.users:
            full = limits.max_users_per_group
            if group.pinned is not None and group.pinned.max_users:
                full = group.pinned.max_users
            if full and len(group.users) >= full:
                raise RemoteError(
                    ErrorCode.GROUP_FULL,
                    f"group {request.group} has {len(group.users)} users already",
                    fatal=True,
                )


class PasswordCheck:
    """The password work of one register: verify the passwords of what exists, hash those of
    what is to be created. `run` may run in any thread: it touches only this object and the
    hashes it was given (whose only change is atomic, see PasswordHash)."""

    __slots__ = (
        "claimed",
        "elsewhere_group_hash",
        "elsewhere_user_hash",
        "ensemble",
        "group",
        "group_hash",
        "group_ok",
        "keyed",
        "new_group_hash",
        "new_user_hash",
        "pinned_user_hash",
        "request",
        "session",
        "user",
        "user_hash",
        "user_ok",
    )

    def __init__(
        self,
        session: Session,
        request: RegisterRequest,
        group: Group | None,
        user: User | None,
        claimed: bool,
        keyed: bool,
    ) -> None:
        self.session = session
        self.request = request
        # What the directory held when the check was prepared, to see at the end whether it
        # still does.
        self.group = group
        self.user = user
        self.group_hash = None if group is None else group.password
        self.user_hash = None if user is None else user.password
        # A pinned user name not connected yet: its password is the operator's.
        self.pinned_user_hash = _pinned_hash(group, request.user) if user is None else None
        # In a cluster, the hashes the shared store holds for a group or user this node has
        # none for (see `learn`).
        self.elsewhere_group_hash: PasswordHash | None = None
        self.elsewhere_user_hash: PasswordHash | None = None
        self.claimed = claimed  # the throttle counted it as a guess until it turns out right
        self.group_ok = True
        self.user_ok = True
        self.new_group_hash: PasswordHash | None = None
        self.new_user_hash: PasswordHash | None = None
        # New hashes are keyed digests (they never leave this process), else scrypt.
        self.keyed = keyed
        # In a cluster, the group's tempo and state as the store holds them, for a group this
        # node has no copy of: its members here start from them.
        self.ensemble: tuple[Timeline, GroupState] | None = None

    def learn(self, group_hash: PasswordHash | None, user_hash: PasswordHash | None) -> None:
        """The hashes the cluster's store holds for this register's group and user (None: it
        holds none), to check against where this node has none; `run` again afterwards."""
        if self.group_hash is None:
            self.elsewhere_group_hash = group_hash
        if self.user_hash is None and self.pinned_user_hash is None:
            self.elsewhere_user_hash = user_hash
        self.group_ok = self.user_ok = True
        self.new_group_hash = self.new_user_hash = None

    @property
    def creates_group(self) -> bool:
        """The register would make a new group (its hash made by `run`)."""
        return self.group_hash is None and self.elsewhere_group_hash is None

    @property
    def creates_user(self) -> bool:
        return (
            self.user_hash is None
            and self.pinned_user_hash is None
            and self.elsewhere_user_hash is None
        )

    def run(self) -> None:
        """Check and make the hashes, with scrypt where needed."""
        self._run(quickly=False)

    def run_quickly(self) -> bool:
        """Check and make the hashes if none needs scrypt (cheap enough for the event loop);
        False, with nothing done, if one does: then `run` it in a worker thread."""
        return self._run(quickly=True)

    def _run(self, quickly: bool) -> bool:
        request = self.request
        group_ok: bool | None = True
        new_group_hash: PasswordHash | None = None
        group_hash = self.group_hash or self.elsewhere_group_hash
        if group_hash is None:  # a new group
            new_group_hash = self._new_hash(request.group_password, quickly)
            if new_group_hash is None:
                return False
        else:
            group_ok = _matches(group_hash, request.group_password, quickly)
            if group_ok is None:
                return False
            if self.group_hash is None:  # joined with the hash from elsewhere
                new_group_hash = group_hash
        user_ok: bool | None = True
        new_user_hash: PasswordHash | None = None
        # No need to look at the user when the group password is wrong: refused anyway.
        user_hash = self.user_hash or self.pinned_user_hash or self.elsewhere_user_hash
        if not group_ok:
            pass
        elif user_hash is None:
            # A new user; or one present only on another node whose hash the store did not
            # give (a router alone never has those).
            if self.user is None:
                new_user_hash = self._new_hash(request.user_password, quickly)
                if new_user_hash is None:
                    return False
            else:
                user_ok = False
        else:
            user_ok = _matches(user_hash, request.user_password, quickly)
            if user_ok is None:
                return False
            if self.user_hash is None:
                new_user_hash = user_hash
        self.group_ok, self.user_ok = bool(group_ok), bool(user_ok)
        self.new_group_hash, self.new_user_hash = new_group_hash, new_user_hash
        return True

    def _new_hash(self, password: str, quickly: bool) -> PasswordHash | None:
        """The hash of a new group or user; None if only scrypt would do and `quickly`."""
        if self.keyed:
            return PasswordHash.keyed(password)
        return None if quickly else PasswordHash(password)


def _matches(expected: PasswordHash, password: str, quickly: bool) -> bool | None:
    """Whether `password` matches `expected`; None if only scrypt can say and `quickly`."""
    answer = expected.matches_quickly(password)
    if answer is None and not quickly:
        return expected.matches(password)
    return answer


@dataclass(frozen=True)
class Joining:
    """A register that passed: the group and user it joins (None: create them) with the hashes
    for what is to be created."""

    group: Group | None
    user: User | None
    group_hash: PasswordHash | None
    user_hash: PasswordHash | None


def _made_meanwhile(check: PasswordCheck, group: Group | None, user: User | None) -> Joining | None:
    """A register that would have made its group, which another register made while this one's
    hashes were made in a worker thread (a class joining a cluster's node at once): it joins as
    a new user with the hash it made, without a second round of scrypt, when its group password
    is the one the maker's hash remembers. Anything else (a wrong password, a group not made
    after all, a user made meanwhile, a pinned user) is None: checked again in full."""
    request = check.request
    if (
        check.group is not None
        or group is None
        or group.password is None
        or user is not None
        or check.new_user_hash is None
        or check.elsewhere_group_hash is not None
        or check.elsewhere_user_hash is not None
        or _pinned_hash(group, request.user) is not None
        or group.password.matches_quickly(request.group_password) is not True
    ):
        return None
    return Joining(group, None, None, check.new_user_hash)


def _pinned_hash(group: Group | None, user: str) -> PasswordHash | None:
    if group is None or group.pinned is None:
        return None
    return group.pinned.users.get(user)


def _auth_failed(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.AUTH_FAILED, detail, fatal=True)
