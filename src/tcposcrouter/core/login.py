"""Login: the checks a register must pass (docs/protocol.md §3), with the failed-login throttle
(`throttle`), the login report (`login_report`) and the dashboard's group-page login
(`group_page`) it owns.

A register is checked in two steps, because a password check may need scrypt, which runs in a
worker thread, away from the routing: `Login.prepare` looks at the directory and the throttle
and returns a `PasswordCheck`, whose `run` does the hashing and nothing else (`run_quickly`
does it on the event loop when no scrypt is needed: keyed hashes, core/auth.py); `Login.complete`
takes the finished check back on the event loop, looks again (other registers may have changed
the directory meanwhile) and says which group and user the register joins.

Pure code: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.messages import RegisterRequest
from .auth import PasswordHash
from .directory import Directory, Group, User
from .group_page import GroupPageLogin
from .login_report import LoginReport
from .session import Session
from .throttle import LoginThrottle

__all__ = ["Joining", "Login", "PasswordCheck"]


class PasswordCheck:
    """The password work of one register: verify the passwords of what exists, hash those of
    what is to be created. `run` may run in any thread: it touches only this object and the
    hashes it was given (whose only change is atomic, see PasswordHash)."""

    __slots__ = (
        "claimed",
        "elsewhere_group_hash",
        "elsewhere_user_hash",
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
        # In cluster mode, the hashes the shared store holds for a group or user this node
        # has none for (see `learn`).
        self.elsewhere_group_hash: PasswordHash | None = None
        self.elsewhere_user_hash: PasswordHash | None = None
        self.claimed = claimed  # the throttle counted it as a guess until it turns out right
        self.group_ok = True
        self.user_ok = True
        self.new_group_hash: PasswordHash | None = None
        self.new_user_hash: PasswordHash | None = None
        # New hashes are keyed digests (they never leave this process), else scrypt.
        self.keyed = keyed

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
            # give (single-node mode never has those).
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


class Login:
    """Decides whether a register may join: throttle, group and user passwords, sizes."""

    def __init__(self, limits: Limits, directory: Directory) -> None:
        self._limits = limits
        self._directory = directory
        self.throttle = LoginThrottle(
            limits.login_failures_allowed,
            limits.login_max_delay,
            limits.login_accounts_per_address,
        )
        self.report = LoginReport()
        self.group_pages = GroupPageLogin(self.throttle, directory)
        # Called with (address, group, user) of every failed password check (cluster mode
        # shares them, see ClusterPort.subscribe_login_failures).
        self.failure_listeners: list[Callable[[str, str, str], None]] = []
        # In a cluster (ClusterPort.connect), hashes go through the shared store: every
        # register makes its own, with scrypt. Else new hashes are keyed digests.
        self.hashes_shared = False

    def release(self, check: PasswordCheck, now: float) -> None:
        """`check` will not be finished (the shell could not): uncount its claim."""
        if check.claimed:
            request = check.request
            self.throttle.released(check.session.address, (request.group, request.user), now)
            check.claimed = False

    def set_limits(self, limits: Limits) -> None:
        self._limits = limits
        self.throttle.set_limits(
            limits.login_failures_allowed,
            limits.login_max_delay,
            limits.login_accounts_per_address,
        )

    def prepare(self, session: Session, request: RegisterRequest, now: float) -> PasswordCheck:
        """The password check a register needs; raise its refusal if it cannot pass anyway."""
        group = self._directory.groups.get(request.group)
        self._check_rules(request, group)
        self._check_sizes(request, group)
        user = None if group is None else group.users.get(request.user)
        # A group that exists, here or (cluster mode) on another node, has a password to
        # guess at; a new group's first register has none.
        claimed = False
        if group is not None:
            account = (request.group, request.user)
            wait = self.throttle.claim(session.address, account, now)
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

    def complete(self, check: PasswordCheck, now: float) -> Joining | None:
        """The outcome of a finished check: what it joins, or None when the directory changed
        under it and it must be prepared again. Raise the refusal."""
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
        limits = self._limits
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
