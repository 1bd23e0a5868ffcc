"""Login: the checks a register must pass, and the failed-login throttle (docs/protocol.md §3).

Pure code: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from ..osc.messages import RegisterRequest
from .directory import Directory, Group, User

__all__ = ["Login", "LoginThrottle"]


class Login:
    """Decides whether a register may join: throttle, group and user passwords, sizes."""

    def __init__(self, limits: Limits, directory: Directory) -> None:
        self._limits = limits
        self._directory = directory
        self.throttle = LoginThrottle(limits.login_failures_allowed, limits.login_max_delay)

    def check(
        self, request: RegisterRequest, address: str, now: float
    ) -> tuple[Group | None, User | None]:
        """The group and user the register joins (None: to be created); raise the refusal."""
        wait = self.throttle.wait_needed(address, now)
        if wait > 0:
            raise RemoteError(
                ErrorCode.LOGIN_THROTTLED,
                f"too many failed logins from your address; try again in {wait:.0f} s",
                fatal=True,
            )
        limits = self._limits
        group = self._directory.groups.get(request.group)
        if group is None:
            if limits.max_groups and len(self._directory.groups) >= limits.max_groups:
                raise RemoteError(
                    ErrorCode.SERVER_FULL,
                    f"the router has {len(self._directory.groups)} groups",
                    fatal=True,
                )
        elif group.password is not None and not group.password.matches(request.group_password):
            self.throttle.failed(address, now)
            raise _auth_failed(f"wrong password for group {request.group}")
        user = None if group is None else group.users.get(request.user)
        if user is None:
            full = limits.max_users_per_group
            if group is not None and full and len(group.users) >= full:
                raise RemoteError(
                    ErrorCode.GROUP_FULL,
                    f"group {request.group} has {len(group.users)} users already",
                    fatal=True,
                )
        elif user.password is None or not user.password.matches(request.user_password):
            # A user present only on another node (password None) cannot be joined here.
            self.throttle.failed(address, now)
            raise _auth_failed(f"wrong password for user {request.user} in group {request.group}")
        return group, user


def _auth_failed(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.AUTH_FAILED, detail, fatal=True)


# Failed-login records kept at most: enough for a botnet's worth of addresses; the oldest are
# forgotten first, so the table never grows without bound.
_MAX_THROTTLE_RECORDS = 50_000
# A record is forgotten once its address has not failed for this long.
_THROTTLE_MEMORY_SECONDS = 600.0


class LoginThrottle:
    """Counts failed logins per source address and says how long an address must wait.

    After `allowed` failures an address is locked for 1 s, then 2, 4, ... up to `max_delay`,
    counted from its last failure. While locked, a register from it is refused without looking
    at the password, so guessing gains nothing; other addresses are not affected. A success does
    not clear the count (an attacker could otherwise clear it by logging into a group of their
    own between guesses); records are forgotten after ten quiet minutes.
    """

    def __init__(self, allowed: int, max_delay: float) -> None:
        self._allowed = allowed
        self._max_delay = max_delay
        self._records: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_needed(self, address: str, now: float) -> float:
        """Seconds `address` must still wait before a register is looked at; 0 if none."""
        record = self._records.get(address)
        if record is None:
            return 0.0
        failures, last = record
        if now - last > _THROTTLE_MEMORY_SECONDS:
            del self._records[address]
            return 0.0
        if failures < self._allowed:
            return 0.0
        delay = min(self._max_delay, 2.0 ** (failures - self._allowed))
        return max(0.0, last + delay - now)

    def failed(self, address: str, now: float) -> None:
        failures, _ = self._records.pop(address, (0, now))
        self._records[address] = (failures + 1, now)
        if len(self._records) > _MAX_THROTTLE_RECORDS:
            self._records.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
