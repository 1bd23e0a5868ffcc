"""The HTTP port's connections that are not (yet) a WebSocket: page loads, /metrics and /healthz
scrapes, handshakes on their way, and whatever holds a connection open without asking for
anything. They are bounded like the OSC ports' unregistered connections (core/admission.py):
at the cap the oldest gives way to the newest, so that a slow or idle crowd can never keep a
musician's WebSocket or a health check out (docs/operating.md, "The HTTP port on the public
internet").

Per address, only a connection older than `PATIENCE_SECONDS` gives way: a classroom behind one
NAT opening the browser page at once (six connections a browser) must not push itself out.
A trusted reverse proxy is one address for everybody behind it and is held only to the total.

Pure code: connections in, connections to close out.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from ...core.admission import PATIENCE_SECONDS

__all__ = ["MAX_HTTP_CONNECTIONS", "WaitingPool", "http_connection_cap"]

# Page loads and scrapes are short; 1,024 at once serves hundreds of people opening the page
# in the same second. WebSocket members are not counted here: the hub admits those.
MAX_HTTP_CONNECTIONS = 1024


def http_connection_cap(max_connections: int) -> int:
    """The pool's total: 1,024, or `--max-connections` if that is lower (0 is no limit)."""
    if max_connections:
        return min(MAX_HTTP_CONNECTIONS, max_connections)
    return MAX_HTTP_CONNECTIONS


Connection = TypeVar("Connection", bound=Hashable)


class WaitingPool(Generic[Connection]):
    def __init__(self) -> None:
        # Oldest first (dicts keep insertion order): connection -> (address, opened at).
        self._open: dict[Connection, tuple[str | None, float]] = {}
        self._from: dict[str, dict[Connection, float]] = {}

    def admit(
        self,
        connection: Connection,
        address: str | None,
        now: float,
        *,
        per_address: int,
        total: int,
    ) -> list[Connection]:
        """Count a new connection from `address` (None: a trusted proxy, held only to the
        total); return the connections to close to make room for it. `per_address` 0: no
        cap per address."""
        evicted: list[Connection] = []
        here = self._from.get(address) if address is not None else None
        if per_address and here is not None and len(here) >= per_address:
            oldest, opened = next(iter(here.items()))
            if now - opened >= PATIENCE_SECONDS:
                evicted.append(oldest)
        if len(self._open) - len(evicted) >= total:
            anywhere = next((c for c in self._open if c not in evicted), None)
            if anywhere is not None:
                evicted.append(anywhere)
        for old in evicted:
            self.leave(old)
        self._open[connection] = (address, now)
        if address is not None:
            self._from.setdefault(address, {})[connection] = now
        return evicted

    def leave(self, connection: Connection) -> None:
        """`connection` closed, or became a WebSocket: it no longer counts."""
        entry = self._open.pop(connection, None)
        if entry is None or entry[0] is None:
            return
        address = entry[0]
        here = self._from[address]
        del here[connection]
        if not here:
            del self._from[address]

    def __len__(self) -> int:
        return len(self._open)

    def from_address(self, address: str) -> int:
        return len(self._from.get(address, ()))
