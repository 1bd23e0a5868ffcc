"""The seams between the running router (server/app.py) and what plugs into it: the transport
shells (tcp.py, websocket.py, http.py) and the cluster node (cluster/, which the command line
builds and hands in). Each side sees the other only through the small Protocols here, so that
imports point down only: app.py imports the shells, never the other way round.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..core.auth import PasswordHash
from ..core.hub import Hub
from ..core.register import PasswordCheck
from ..core.session import Session
from ..core.statistics import HubStatistics
from .config import ServerConfig
from .handoff import Handoff

__all__ = [
    "ClusterEdge",
    "ClusterStatistics",
    "Connection",
    "Connections",
    "RunChecks",
    "RunningRouter",
    "ServerStatistics",
]


class Connection(Protocol):
    """What the server asks of a connection of any transport (TCP, WebSocket). It is also the
    hub's `Sink` for that connection."""

    session: Session | None

    def password_checked(self, check: PasswordCheck) -> None: ...

    def close(self) -> None: ...

    def reset(self) -> None: ...

    def socket(self) -> socket.socket | None:
        """The TCP socket under it (for the kernel's round-trip time), if there is one."""


class Connections:
    """The open connections, and which one carries each of the hub's sessions: the way from a
    session (a password check, a dashboard row) back to its connection."""

    def __init__(self) -> None:
        self._open: set[Connection] = set()
        self._by_session: dict[int, Connection] = {}

    def add(self, connection: Connection) -> None:
        self._open.add(connection)

    def bind(self, session: Session, connection: Connection) -> None:
        self._by_session[session.id] = connection

    def gone(self, connection: Connection) -> None:
        self._open.discard(connection)
        session = connection.session
        if session is not None and self._by_session.get(session.id) is connection:
            del self._by_session[session.id]

    def of(self, session_id: int) -> Connection | None:
        return self._by_session.get(session_id)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._open))

    def __len__(self) -> int:
        return len(self._open)


@dataclass(frozen=True)
class ClusterStatistics:
    node: str
    degraded: bool
    nodes_seen: int  # other nodes with users here, as of the last resync
    published: int  # messages published to other nodes
    received: int  # messages received from other nodes
    unsent: int  # packets for other nodes not sent because Redis was away


@dataclass(frozen=True)
class ServerStatistics:
    """The hub's snapshot and what only the shell sees."""

    hub: HubStatistics
    uptime_seconds: float
    flushes: int  # loop turns that wrote output
    internal_errors: int  # bugs caught on a connection (each closed that connection)
    shutting_down: bool
    cluster: ClusterStatistics | None = None  # None: not in a cluster
    http_waiting: int = 0  # HTTP connections not (yet) a WebSocket (server/http/waiting.py)
    http_evicted: int = 0  # of those, closed to make room for newer ones


# Runs a batch of password checks in the worker threads.
RunChecks = Callable[[list[PasswordCheck]], Awaitable[None]]


class ClusterEdge(Protocol):
    """What the server asks of the cluster node it was handed (cluster/node.py)."""

    @property
    def degraded(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def statistics(self) -> ClusterStatistics: ...

    async def finish_checks(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        """Carry the checks through the cluster's store and `run`, and hand each back to its
        connection (`Connection.password_checked`)."""


class RunningRouter(Protocol):
    """What the shells and the cluster node need of the running router."""

    hub: Hub
    config: ServerConfig
    connections: Connections
    admin_token: str
    shutting_down: bool
    started_at: float
    handoff: Handoff | None  # with --workers: this worker's place (server/handoff.py)

    @property
    def cluster(self) -> ClusterEdge | None: ...

    def now(self) -> float: ...

    def output_ready(self) -> None: ...

    def checks_ready(self) -> None: ...

    def defer(self, work: Callable[[], None]) -> None: ...

    def hub_failed(self, connection: Connection, session: Session) -> None: ...

    def connection_closed(self) -> None: ...

    def statistics(self) -> ServerStatistics: ...

    async def check_password(self, expected: PasswordHash, password: str) -> bool: ...
