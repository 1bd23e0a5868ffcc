"""The dashboard's logins: a group's name and password show that group's page, the admin token
everything (docs/operating.md, "Dashboard, metrics and health"). Guesses at either are
throttled by the registers' failed-login throttle (core/throttle.py), at accounts of their own,
so that guessing there slows nobody's register, and an address that never guessed wrong (the
owner's) is checked at once.

Pure code: the caller passes the time; the password itself is checked by the shell in a worker
thread (scrypt), against the hash `claim` returns.
"""

from __future__ import annotations

from ...core.auth import PasswordHash
from ...core.directory import Directory
from ...core.throttle import Account, LoginThrottle

__all__ = ["PageLogins"]


class PageLogins:
    def __init__(self, throttle: LoginThrottle, directory: Directory) -> None:
        self._throttle = throttle
        self._directory = directory

    def claim(self, address: str, group_name: str, now: float) -> tuple[float, PasswordHash | None]:
        """Someone at `address` asks for `group_name`'s page with its password. Return the
        seconds they must wait first, or 0 and the hash to check the password against, then
        `checked` (None: no such group; counted as a wrong password, so the page does not tell
        which groups exist)."""
        account = _account(group_name)
        wait = self._throttle.claim(address, account, now)
        if wait:
            return wait, None
        group = self._directory.groups.get(group_name)
        password = None if group is None else group.password
        if password is None:
            self._throttle.failed(address, account, now)
        return 0.0, password

    def checked(self, address: str, group_name: str, right: bool, now: float) -> None:
        self._settle(address, _account(group_name), right, now)

    def claim_admin(self, address: str, now: float) -> float:
        """Someone at `address` offers the admin token: the seconds they must wait first (0:
        compare it now, in constant time, then `admin_checked`)."""
        return self._throttle.claim(address, _ADMIN, now)

    def admin_checked(self, address: str, right: bool, now: float) -> None:
        self._settle(address, _ADMIN, right, now)

    def _settle(self, address: str, account: Account, right: bool, now: float) -> None:
        if right:
            self._throttle.succeeded(address, account, now)
        else:
            self._throttle.failed(address, account, now)


# The admin token's account: no group is called "" (docs/protocol.md §3).
_ADMIN: Account = ("", "admin token")


def _account(group_name: str) -> Account:
    # No user name: a user cannot be called "" (docs/protocol.md §3), so this account is the
    # page's own and never a register's.
    return (group_name, "")
