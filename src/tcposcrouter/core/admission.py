"""Admission: how many connections the router holds, and which give way when it is full.

Connections are counted in three pools, by their state (core/session.py): *waiting* (NEW or
REFUSED: connected, no register yet), *checking* (REGISTERING) and *members* (REGISTERED); a
connection the router is closing counts no more. Waiting connections are the cheap ones
to lose: a client that registers does so within a round trip of connecting, so one still
waiting after many newer connections is a scanner, a stuck program or a reconnect loop. So at
a cap the oldest waiting connection makes room for the new one, and a client that connects and
registers at once always gets in (docs/protocol.md §7).

At the cap per address, only a connection that has waited `PATIENCE_SECONDS` gives way: a whole
classroom reconnecting at once through one NAT puts hundreds of connections into the waiting
pool within a few milliseconds, before the router has read a single register, and none of them
must be lost for it. So the pool of one address holds at most its cap plus what arrived in the
last `PATIENCE_SECONDS`; the total cap (`max_connections`) bounds everything.

Pure code.
"""

from __future__ import annotations

from ..errors import ErrorCode, RemoteError
from ..limits import Limits
from .session import UNREGISTERED, Session, SessionState

__all__ = ["PATIENCE_SECONDS", "Admission"]

# How long a waiting connection is left alone: far more than any client takes to send its
# register after connecting (a round trip), far less than the register timeout.
PATIENCE_SECONDS = 2.0


class Admission:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits  # replaced as a whole by a reload
        self._total = 0
        # Waiting connections, oldest first (dicts keep insertion order), overall and by address.
        self._waiting: dict[int, Session] = {}
        self._waiting_from: dict[str, dict[int, Session]] = {}
        self._members_from: dict[str, int] = {}

    def admit(self, session: Session) -> tuple[RemoteError | None, list[Session]]:
        """Count a new connection. Return its refusal (None: it may stay) and the waiting
        connections to close to make room for it (closing them releases them)."""
        limits = self.limits
        address = session.address
        evicted: list[Session] = []
        waiting_here = self._waiting_from.get(address)
        cap = limits.max_unregistered_per_address
        if cap and waiting_here is not None and len(waiting_here) >= cap:
            oldest = next(iter(waiting_here.values()))
            if session.opened_at - oldest.opened_at >= PATIENCE_SECONDS:
                evicted.append(oldest)
        refusal = None
        if limits.max_connections and self._total - len(evicted) >= limits.max_connections:
            anywhere = next((s for s in self._waiting.values() if s not in evicted), None)
            if anywhere is None:
                refusal = RemoteError(
                    ErrorCode.SERVER_FULL,
                    f"the router has {self._total} connections, all of them registered",
                    fatal=True,
                )
            else:
                evicted.append(anywhere)
        self._total += 1
        self._waiting[session.id] = session
        self._waiting_from.setdefault(address, {})[session.id] = session
        return refusal, evicted

    def checking(self, session: Session) -> None:
        """`session` sent a register (call before it moves to REGISTERING; again for a check
        repeated): it no longer gives way to newer connections."""
        if session.state in UNREGISTERED:
            self._unwait(session)

    def room_for_member(self, address: str) -> bool:
        cap = self.limits.max_connections_per_address
        return not cap or self._members_from.get(address, 0) < cap

    def registered(self, session: Session) -> None:
        """`session` joins (call before it moves to REGISTERED)."""
        address = session.address
        self._members_from[address] = self._members_from.get(address, 0) + 1

    def hold(self, address: str) -> None:
        """A member's place from `address` is held after its connection ended (core/resume.py):
        it still counts as a member there, without being a connection."""
        self._members_from[address] = self._members_from.get(address, 0) + 1

    def unhold(self, address: str) -> None:
        """A held place from `address` was taken back, or ended."""
        remaining = self._members_from[address] - 1
        if remaining:
            self._members_from[address] = remaining
        else:
            del self._members_from[address]

    def release(self, session: Session) -> None:
        """`session` is gone, or is being closed (call before it moves to CLOSING or CLOSED):
        it stops counting."""
        state = session.state
        if state is SessionState.CLOSING or state is SessionState.CLOSED:
            return
        if state in UNREGISTERED:
            self._unwait(session)
        elif state is SessionState.REGISTERED:
            self.unhold(session.address)
        self._total -= 1

    def _unwait(self, session: Session) -> None:
        del self._waiting[session.id]
        here = self._waiting_from[session.address]
        del here[session.id]
        if not here:
            del self._waiting_from[session.address]

    def connections(self) -> int:
        return self._total

    def members_from(self, address: str) -> int:
        return self._members_from.get(address, 0)

    def waiting_from(self, address: str) -> int:
        return len(self._waiting_from.get(address, ()))
