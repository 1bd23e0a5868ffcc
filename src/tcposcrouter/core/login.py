"""Login: the checks a register must pass, the failed-login throttle, and the login report
(docs/protocol.md §3).

A register is checked in two steps, because its password checks (scrypt) run in a worker
thread, away from the routing: `Login.prepare` looks at the directory and the throttle and
returns a `PasswordCheck`, whose `run` does the hashing and nothing else; `Login.complete`
takes the finished check back on the event loop, looks again (other registers may have changed
the directory meanwhile) and says which group and user the register joins.

Pure code: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.messages import RegisterRequest
from .auth import PasswordHash
from .directory import Directory, Group, User

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Login", "LoginReport", "LoginThrottle", "PasswordCheck"]

Account = tuple[str, str]  # (group name, user name): what a password guess is aimed at


class PasswordCheck:
    """The password work of one register: verify the passwords of what exists, hash those of
    what is to be created. `run` may run in any thread: it touches only this object and the
    (immutable) hashes it was given."""

    __slots__ = (
        "claimed",
        "elsewhere_group_hash",
        "elsewhere_user_hash",
        "group",
        "group_hash",
        "group_ok",
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
        request = self.request
        group_hash = self.group_hash or self.elsewhere_group_hash
        if group_hash is None:  # a new group
            self.new_group_hash = PasswordHash(request.group_password)
        else:
            self.group_ok = group_hash.matches(request.group_password)
            if self.group_hash is None:  # joined with the hash from elsewhere
                self.new_group_hash = group_hash
        if not self.group_ok:
            return  # no need to look at the user: the register is refused anyway
        user_hash = self.user_hash or self.pinned_user_hash or self.elsewhere_user_hash
        if user_hash is None:
            # A new user; or one present only on another node whose hash the store did not
            # give (single-node mode never has those).
            if self.user is None:
                self.new_user_hash = PasswordHash(request.user_password)
            else:
                self.user_ok = False
        else:
            self.user_ok = user_hash.matches(request.user_password)
            if self.user_hash is None:
                self.new_user_hash = user_hash


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
        # Called with (address, group, user) of every failed password check (cluster mode
        # shares them, see Hub.subscribe_login_failures).
        self.failure_listeners: list[Callable[[str, str, str], None]] = []

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
        return PasswordCheck(session, request, group, user, claimed)

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
        if (
            group is not check.group
            or user is not check.user
            or (group is not None and group.password is not check.group_hash)
            or (user is None and _pinned_hash(group, request.user) is not check.pinned_user_hash)
        ):
            return None
        self._check_rules(request, group)
        self._check_sizes(request, group)
        return Joining(group, user, check.new_group_hash, check.new_user_hash)

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


def _pinned_hash(group: Group | None, user: str) -> PasswordHash | None:
    if group is None or group.pinned is None:
        return None
    return group.pinned.users.get(user)


def _auth_failed(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.AUTH_FAILED, detail, fatal=True)


# Records kept at most per table: enough for a botnet's worth of addresses; the least recently
# used are forgotten first, so no table grows without bound.
_MAX_RECORDS = 50_000
# A record is forgotten once it has not changed for this long.
_MEMORY_SECONDS = 600.0
# After `allowed` failures at an account from anywhere, the addresses that failed at it get one
# password check per this many seconds between them.
_ACCOUNT_CHECK_SECONDS = 1.0


class _Record:
    __slots__ = ("accounts", "failures", "last", "next_check")

    def __init__(self, now: float) -> None:
        self.failures = 0
        self.last = now
        self.next_check = 0.0
        self.accounts: set[Account] | None = None  # address records: accounts failed at


class _Table:
    """Records by key, least recently changed first, bounded in size and age."""

    def __init__(self) -> None:
        self._records: OrderedDict[object, _Record] = OrderedDict()

    def get(self, key: object, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and now - record.last > _MEMORY_SECONDS:
            del self._records[key]
            return None
        return record

    def touch(self, key: object, now: float) -> _Record:
        record = self.get(key, now)
        if record is None:
            record = self._records[key] = _Record(now)
            if len(self._records) > _MAX_RECORDS:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(key)
        record.last = now
        return record

    def pop(self, key: object) -> _Record | None:
        return self._records.pop(key, None)

    def forget_old(self, now: float) -> None:
        records = self._records
        while records:
            key, record = next(iter(records.items()))
            if now - record.last <= _MEMORY_SECONDS:
                return
            del records[key]

    def __len__(self) -> int:
        return len(self._records)


class LoginThrottle:
    """Slows password guessing without locking anyone else out, also behind a shared address.

    Guesses are counted where they aim: at an *account* (a user name in a group, whichever of
    its two passwords was wrong), from an address. Every password check is counted as a failure
    when it is claimed and forgiven when it turns out right, so parallel guesses on many
    connections cannot slip past the count.

    - *One address at one account*: after `allowed` failures that address waits 1, 2, 4 ... up
      to `max_delay` s (from its last try) before its next check at that account.
    - *One account from anywhere*: after `allowed` failures in all, addresses that have failed
      at it share one check per second. An address that never failed at it (the musician who
      owns it, typing the right password) is checked at once.
    - *One address across accounts*: an address that failed at `accounts_per_address` different
      accounts waits 1, 2, 4 ... s before every further check, except at accounts it has
      logged into recently.

    So a classroom behind one NAT is never slowed by a few students who mistype, each of whom
    only slows their own account; guessing one account gets at most about one check per
    second, from one address or a few; and nobody elsewhere can lock a musician out.
    """

    def __init__(self, allowed: int, max_delay: float, accounts_per_address: int) -> None:
        self.set_limits(allowed, max_delay, accounts_per_address)
        self._pairs = _Table()  # (address, account)
        self._accounts = _Table()  # account
        self._addresses = _Table()  # address
        self._trusted = _Table()  # (address, account) that logged in

    def set_limits(self, allowed: int, max_delay: float, accounts_per_address: int) -> None:
        """New limits (a reload); what was counted so far stays counted."""
        self._allowed = allowed
        self._max_delay = max_delay
        self._accounts_per_address = accounts_per_address

    def _delay(self, beyond: int) -> float:
        return min(self._max_delay, 2.0**beyond)

    def wait_needed(self, address: str, account: Account, now: float) -> float:
        """Seconds before `address` may have a password checked at `account`; 0: now."""
        pair = self._pairs.get((address, account), now)
        allowed = self._allowed
        if pair is not None and pair.failures >= allowed:
            wait = pair.last + self._delay(pair.failures - allowed) - now
            if wait > 0:
                return wait
        record = self._accounts.get(account, now)
        if pair is not None and record is not None and record.failures >= allowed:
            wait = record.next_check - now
            if wait > 0:
                return wait
        spread = self._addresses.get(address, now)
        if spread is not None and spread.accounts is not None:
            beyond = len(spread.accounts) - self._accounts_per_address
            if beyond >= 0 and self._trusted.get((address, account), now) is None:
                wait = spread.last + self._delay(beyond) - now
                if wait > 0:
                    return wait
        return 0.0

    def claim(self, address: str, account: Account, now: float) -> float:
        """Claim one password check: return 0 and count it as a failure until `succeeded`, or
        the seconds to wait (nothing counted)."""
        wait = self.wait_needed(address, account, now)
        if wait > 0:
            return wait
        known = self._pairs.get((address, account), now) is not None
        self._pairs.touch((address, account), now).failures += 1
        record = self._accounts.touch(account, now)
        record.failures += 1
        if known and record.failures > self._allowed:
            record.next_check = now + _ACCOUNT_CHECK_SECONDS
        return 0.0

    def failed(self, address: str, account: Account, now: float) -> None:
        """The claimed check was wrong (it stays counted as a failure at the account); count
        the account against the address. Only now, not at the claim: a whole classroom
        registering at once through one address has many checks in flight, none of them
        wrong."""
        spread = self._addresses.touch(address, now)
        if spread.accounts is None:
            spread.accounts = set()
        if len(spread.accounts) <= self._accounts_per_address + 16:  # enough to count on
            spread.accounts.add(account)

    def record_failure(self, address: str, account: Account, now: float) -> None:
        """A failure seen elsewhere (another node): count it as a claimed check that failed."""
        if self.claim(address, account, now) == 0.0:
            self.failed(address, account, now)
        else:  # already waiting: the failure still counts for its next wait
            self._pairs.touch((address, account), now).failures += 1

    def released(self, address: str, account: Account, now: float) -> None:
        """The claimed check never ran to its end: uncount it, trusting nothing."""
        pair = self._pairs.get((address, account), now)
        if pair is not None and pair.failures > 0:
            pair.failures -= 1
        record = self._accounts.get(account, now)
        if record is not None and record.failures > 0:
            record.failures -= 1

    def succeeded(self, address: str, account: Account, now: float) -> None:
        """The claimed check was right: forgive it, and trust the address at that account."""
        self._pairs.pop((address, account))
        record = self._accounts.get(account, now)
        if record is not None and record.failures > 0:
            record.failures -= 1
        self._trusted.touch((address, account), now)

    def forget_old(self, now: float) -> None:
        for table in (self._pairs, self._accounts, self._addresses, self._trusted):
            table.forget_old(now)

    def __len__(self) -> int:
        return len(self._pairs) + len(self._accounts) + len(self._addresses)


# Failed logins are summarised per address over this many seconds.
REPORT_SECONDS = 60.0
# Addresses summarised at most per report: the rest are counted in one line.
_REPORT_ADDRESSES = 20
# Addresses tallied at once; more (a botnet) are tallied together, so the table stays bounded.
_MAX_TALLIES = 10_000
_OTHERS = "other addresses"


class _Tally:
    __slots__ = ("accounts", "failed", "since", "throttled")

    def __init__(self, now: float) -> None:
        self.since = now
        self.failed = 0
        self.throttled = 0
        self.accounts: set[Account] = set()


class LoginReport:
    """Failed and throttled logins per address, for a log line per address and minute instead
    of one per attempt."""

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}

    def _tally(self, address: str, now: float) -> _Tally:
        tally = self._tallies.get(address)
        if tally is None and len(self._tallies) >= _MAX_TALLIES:
            address = _OTHERS
            tally = self._tallies.get(address)
        if tally is None:
            tally = self._tallies[address] = _Tally(now)
        return tally

    def failed(self, address: str, account: Account, now: float) -> None:
        """Count a wrong password."""
        tally = self._tally(address, now)
        tally.failed += 1
        if len(tally.accounts) < 1000:
            tally.accounts.add(account)

    def throttled(self, address: str, now: float) -> None:
        self._tally(address, now).throttled += 1

    def first(self, address: str) -> bool:
        """Whether the address's latest refusal is its first in this report."""
        tally = self._tallies.get(address)
        return tally is None or tally.failed + tally.throttled <= 1

    def due(self, now: float) -> list[str]:
        """The summary lines of the addresses whose minute is over."""
        lines: list[str] = []
        done = [a for a, t in self._tallies.items() if now - t.since >= REPORT_SECONDS]
        for address in done[:_REPORT_ADDRESSES]:
            tally = self._tallies.pop(address)
            lines.append(
                f"failed logins from {address} in {now - tally.since:.0f} s: "
                f"{tally.failed} wrong passwords at {len(tally.accounts)} accounts, "
                f"{tally.throttled} refused as throttled"
            )
        rest = done[_REPORT_ADDRESSES:]
        if rest:
            failed = sum(self._tallies[a].failed for a in rest)
            throttled = sum(self._tallies.pop(a).throttled for a in rest)
            lines.append(
                f"failed logins from {len(rest)} more addresses: {failed} wrong passwords, "
                f"{throttled} refused as throttled"
            )
        return lines
