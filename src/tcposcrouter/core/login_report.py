"""The login report: failed and throttled logins summarised per address and minute, so that a
guessing storm is a few log lines, not one per attempt.

Pure code: the caller passes the time.
"""

from __future__ import annotations

from .throttle import Account

__all__ = ["REPORT_SECONDS", "LoginReport"]

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
