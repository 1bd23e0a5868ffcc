"""The failed-login throttle: slows password guessing at an account without locking its owner
out, also behind a shared address (docs/protocol.md §3).

Pure code: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["Account", "LoginThrottle"]

Account = tuple[str, str]  # (group name, user name): what a password guess is aimed at

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
