"""The running router: the hub, its listeners and connections, the flush per loop turn, the
once-a-second tick, statistics and shutdown.

Output leaves once per turn of the event loop: after any call into the hub that queued output,
`output_ready()` schedules one `flush` with `call_soon`, which runs after every callback of the
current turn, before the loop waits for new events. So everything the turn's reads produced for
one receiver, from all senders, leaves in one write, and a lone message leaves in the turn it
arrived.

Password checks (scrypt) run in a small pool of worker threads: scrypt releases the GIL, so a
storm of registers is hashed on every core while the event loop goes on routing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from ..core.auth import PasswordHash
from ..core.hub import Hub, HubConfig
from ..core.login import PasswordCheck
from ..core.pinned import GroupRules
from ..core.session import Session
from ..core.statistics import HubStatistics
from ..limits import Limits
from .tcp import TcpConnection, format_peer
from .tls import TlsConfig, TlsContext

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode, ClusterStatistics
    from .http import HttpSide

__all__ = ["RouterServer", "ServerConfig", "ServerStatistics"]

log = logging.getLogger("tcposcrouter.server")

DEFAULT_OSC10_PORT = 55555
DEFAULT_OSC11_PORT = 55556
DEFAULT_HTTP_PORT = 55557
# With a certificate: the same two framings over TLS, next to the plain ports (which stay, for
# clients that cannot do TLS: sclang, Pd).
DEFAULT_TLS_OSC10_PORT = 55558
DEFAULT_TLS_OSC11_PORT = 55559
# Where a reverse proxy on the same machine (nginx for port 443) connects from: its
# X-Forwarded-For names the client (see server/websocket.py's client_address).
DEFAULT_TRUSTED_PROXIES = frozenset({"127.0.0.1", "::1"})
# How long a shutdown waits for queued output to reach the clients before it drops them.
SHUTDOWN_GRACE_SECONDS = 5.0
# Connections the kernel may hold completed but not yet accepted. asyncio's default of 100 drops
# the SYNs of a reconnection storm (a whole festival's clients after a router restart), which the
# clients then retry only after a second; the kernel caps this at net.core.somaxconn anyway.
LISTEN_BACKLOG = 4096
# How often timeouts are checked: they are counted in seconds, so once a second is exact enough.
TICK_SECONDS = 1.0
# Threads that check passwords: one per core (the event loop mostly waits on the network), and
# at most four, beyond which a storm of registers is no faster but the router holds more
# threads than it needs.
PASSWORD_THREADS = max(1, min(4, os.cpu_count() or 1))
# New connections set up, or reads of unregistered ones handled, per turn of the loop: at about
# 35 us each (socket options, parsing a register, preparing its check), 32 keep a turn near 1 ms.
DEFERRED_PER_TURN = 32
# Registers checked per job: completing one costs the event loop about 0.1 ms (replies, user
# lists, log lines), so a batch of 16 keeps every turn of the loop short in a storm.
CHECK_BATCH = 16
# How much lower than the event loop they run (nice). On Linux a thread has a niceness of its own.
PASSWORD_NICENESS = 10


@dataclass(frozen=True)
class ServerConfig:
    hosts: list[str] | None = None  # None: every interface, IPv4 and IPv6
    osc10_port: int | None = DEFAULT_OSC10_PORT  # None: disabled
    osc11_port: int | None = DEFAULT_OSC11_PORT
    http_port: int | None = DEFAULT_HTTP_PORT  # WebSocket, dashboard, metrics; None: off
    admin_token: str | None = None  # the dashboard's; None: one is made at start-up
    trusted_proxies: frozenset[str] = DEFAULT_TRUSTED_PROXIES
    limits: Limits = field(default_factory=Limits)
    log_messages: bool = False
    group_rules: GroupRules = field(default_factory=GroupRules)
    tls: TlsConfig | None = None  # a certificate: TLS listeners, and HTTPS on the HTTP port
    cluster: str | None = None  # redis://HOST:PORT/DB: a node of a cluster (cluster/node.py)
    node_id: str | None = None  # its name in the cluster; None: host name and process id
    reuse_port: bool = False  # share the listening ports with other processes (--workers)


# What a reload (SIGHUP) can change without a restart; everything else is a listening socket
# or set up once, and a change to it is logged as needing a restart.
RELOADABLE = ("limits", "group_rules", "admin_token", "trusted_proxies", "tls")  # tls: its files


class Connection(Protocol):
    """What the server asks of a connection of any transport (TCP, WebSocket)."""

    session: Session | None

    def password_checked(self, check: PasswordCheck) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class ServerStatistics:
    """The hub's snapshot and what only the shell sees."""

    hub: HubStatistics
    uptime_seconds: float
    flushes: int  # loop turns that wrote output
    internal_errors: int  # bugs caught on a connection (each closed that connection)
    shutting_down: bool
    cluster: ClusterStatistics | None = None  # None: not in a cluster


class RouterServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.hub = Hub(HubConfig(limits=config.limits, log_messages=config.log_messages))
        self.hub.set_group_rules(config.group_rules)
        self.tls = None if config.tls is None else TlsContext(config.tls.cert, config.tls.key)
        self.connections: set[Connection] = set()
        self.internal_errors = 0
        self.shutting_down = False
        self.started_at = 0.0
        # The dashboard's admin token: given, or made here and printed on the console.
        self.admin_token = config.admin_token or secrets.token_urlsafe(18)
        self.http: HttpSide | None = None
        self.cluster: ClusterNode | None = None
        self._cluster_jobs: set[asyncio.Task[None]] = set()
        self._flushes = 0
        self._listeners: list[asyncio.base_events.Server] = []
        self._all_closed: asyncio.Event | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._passwords = ThreadPoolExecutor(
            PASSWORD_THREADS, thread_name_prefix="passwords", initializer=_behind_the_music
        )
        self._checks_scheduled = False
        self._deferred: collections.deque[Callable[[], None]] = collections.deque()

    def now(self) -> float:
        """The time the hub is given. Not `loop.time()`: uvloop's counts whole milliseconds
        (libuv's clock), too coarse for the time service's answers (docs/protocol.md §9)."""
        return time.monotonic()

    def output_ready(self) -> None:
        """Schedule one flush for the end of this loop turn, if the hub has output waiting."""
        if not self._flush_scheduled and self.hub.has_output:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._flushes += 1
        self.hub.flush()

    def defer(self, work: Callable[[], None]) -> None:
        """Do `work` (setting up a new connection, handling what it sent before registering) on
        a later turn of the loop, in order, at most `DEFERRED_PER_TURN` per turn: a thousand
        clients reconnecting at once then cost a thousand appends in the turn they arrive, and
        the routing of everyone already playing goes on between the chunks (the loop polls the
        network before each)."""
        self._deferred.append(work)
        if len(self._deferred) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._run_deferred)

    def _run_deferred(self) -> None:
        deferred = self._deferred
        for _ in range(min(DEFERRED_PER_TURN, len(deferred))):
            deferred.popleft()()
        if deferred:
            assert self._loop is not None
            self._loop.call_soon(self._run_deferred)

    def checks_ready(self) -> None:
        """Schedule the hub's waiting password checks to start at the end of this loop turn."""
        if not self._checks_scheduled and self.hub.has_password_checks:
            self._checks_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._start_checks)

    def _start_checks(self) -> None:
        """Hand the turn's password checks to the worker threads in batches of at most
        `CHECK_BATCH`: a storm of registers costs a hand-over per batch, not per register, and
        the registers a finished batch completes fit in one short turn of the event loop."""
        self._checks_scheduled = False
        checks = self.hub.take_password_checks()
        assert self._loop is not None
        batches = [checks[i : i + CHECK_BATCH] for i in range(0, len(checks), CHECK_BATCH)]
        if self.cluster is not None:  # through the cluster's store, see ClusterNode
            for batch in batches:
                job = self._loop.create_task(self._cluster_checks(self.cluster, batch))
                self._cluster_jobs.add(job)
                job.add_done_callback(self._cluster_jobs.discard)
            return
        for batch in batches:
            future = self._loop.run_in_executor(self._passwords, _run_all, batch)
            future.add_done_callback(functools.partial(self._checked, batch))

    async def _cluster_checks(self, cluster: ClusterNode, batch: list[PasswordCheck]) -> None:
        try:
            await cluster.finish_checks(batch, self._run_checks)
        except Exception:  # a bug: those connections go, nobody else
            self.internal_errors += 1
            log.exception("cluster password checks failed")
            for check in batch:
                cast(Connection, check.session.mailbox.sink).abort()
        self.output_ready()
        self.checks_ready()

    async def _run_checks(self, batch: list[PasswordCheck]) -> None:
        assert self._loop is not None
        await self._loop.run_in_executor(self._passwords, _run_all, batch)

    def _checked(self, batch: list[PasswordCheck], done: asyncio.Future[None]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        for check in batch:
            # Every sink the hub holds is one of the server's connections.
            connection = cast(Connection, check.session.mailbox.sink)
            if error is not None:  # a bug in a check: those connections go, nobody else
                self.internal_errors += 1
                log.error("password check of %s failed: %r", check.session.describe(), error)
                connection.abort()
            else:
                connection.password_checked(check)

    def hub_failed(self, connection: Connection, session: Session) -> None:
        """Call from the `except` around a call into the hub: an exception out of the hub is a
        bug, not a peer's fault, and must not take the router or anyone else down. Log it and
        drop that connection only."""
        self.internal_errors += 1
        log.exception("internal error on %s; dropping that connection", session.describe())
        connection.abort()

    def _tick(self) -> None:
        assert self._loop is not None
        now = self.now()
        self.hub.set_wall_clock(time.time() - now)
        self.hub.tick(now)
        if self.http is not None:
            self.http.tick(now)
        self.output_ready()
        self._ticker = self._loop.call_later(TICK_SECONDS, self._tick)

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            hub=self.hub.statistics(),
            uptime_seconds=self.now() - self.started_at,
            flushes=self._flushes,
            internal_errors=self.internal_errors,
            shutting_down=self.shutting_down,
            cluster=None if self.cluster is None else self.cluster.statistics(),
        )

    async def check_password(self, expected: PasswordHash, password: str) -> bool:
        """Whether `password` matches `expected`, hashed in a worker thread (scrypt)."""
        assert self._loop is not None
        return await self._loop.run_in_executor(self._passwords, expected.matches, password)

    async def start(self) -> list[str]:
        """Open the listeners; return the addresses listened on, for the console."""
        loop = self._loop = asyncio.get_running_loop()
        self.started_at = self.now()
        self.hub.set_wall_clock(time.time() - self.started_at)
        addresses: list[str] = []
        config = self.config
        if config.cluster is not None:
            # Joined first (waiting a few seconds for Redis at most), so that the first
            # clients find the cluster; without Redis the node starts degraded.
            from ..cluster.node import ClusterNode, default_node_id  # redis-py only when used

            self.cluster = ClusterNode(self, config.cluster, config.node_id or default_node_id())
            await self.cluster.start()  # it logs whether it reached Redis
        tls = config.tls
        ports = [
            (port, label, False)
            for port, label in (
                (config.osc10_port, "OSC 1.0 length prefix"),
                (config.osc11_port, "OSC 1.1 SLIP"),
            )
            if port is not None
        ]
        if tls is not None:
            ports += [
                (port, label, True)
                for port, label in (
                    (tls.osc10_port, "OSC 1.0 length prefix over TLS"),
                    (tls.osc11_port, "OSC 1.1 SLIP over TLS"),
                )
                if port is not None
            ]
        for port, label, secure in ports:
            context = self.tls.context if secure and self.tls is not None else None
            listener = await loop.create_server(
                lambda: TcpConnection(self),
                host=config.hosts,
                port=port,
                reuse_address=True,
                reuse_port=config.reuse_port or None,
                backlog=LISTEN_BACKLOG,
                ssl=context,
                # A handshake that does not finish is a connection that never registers.
                ssl_handshake_timeout=(config.limits.register_timeout or 10.0) if secure else None,
            )
            self._listeners.append(listener)
            for sock in listener.sockets:
                addresses.append(
                    f"{format_peer(sock.getsockname())} ({label}; framing auto-detected)"
                )
        if config.http_port is not None:
            from .http import HttpSide  # aiohttp is imported only when the HTTP side is on

            self.http = HttpSide(self)
            scheme = "HTTPS" if self.tls is not None else "HTTP"
            for address in await self.http.start(
                config.hosts,
                config.http_port,
                LISTEN_BACKLOG,
                None if self.tls is None else self.tls.context,
                reuse_port=config.reuse_port,
            ):
                addresses.append(
                    f"{address} ({scheme}: OSC over WebSocket at /osc, dashboard at /, /metrics)"
                )
        self._ticker = loop.call_later(TICK_SECONDS, self._tick)
        return addresses

    def reload(self, config: ServerConfig) -> list[str]:
        """Take the settings of `config` that a running router can change (`RELOADABLE`, and
        the certificate's files): nobody connected is dropped. The certificate is loaded
        first, and if it cannot be, the error is raised (OSError, ssl.SSLError) and nothing
        has changed. Return the names of the other settings that differ, which only a restart
        applies."""
        old = self.config
        tls = old.tls
        if config.tls is not None and tls is not None and self.tls is not None:
            self.tls.reload(config.tls.cert, config.tls.key)
            tls = dataclasses.replace(tls, cert=config.tls.cert, key=config.tls.key)
        if config.limits != old.limits:
            self.hub.set_limits(config.limits, self.now())
        self.hub.set_group_rules(config.group_rules)
        if config.admin_token is not None:
            self.admin_token = config.admin_token
        restart = [
            item.name
            for item in dataclasses.fields(config)
            if item.name not in RELOADABLE and getattr(config, item.name) != getattr(old, item.name)
        ]
        if tls != config.tls:  # switched on or off, or other ports
            restart.append("tls")
        taken = {name: getattr(config, name) for name in RELOADABLE}
        self.config = dataclasses.replace(old, **{**taken, "tls": tls})
        return restart

    async def stop(self) -> None:
        """Stop accepting; tell every client the router is shutting down, after what is queued
        for it; close; wait for them (at most `SHUTDOWN_GRACE_SECONDS`); close the HTTP side
        last, so that /healthz says 503 meanwhile."""
        self.shutting_down = True  # /healthz answers 503 from now on
        if self._ticker is not None:
            self._ticker.cancel()
        for listener in self._listeners:
            listener.close()
        self.hub.shutdown()
        for connection in list(self.connections):
            if connection.session is None:  # accepted, not set up yet: nothing to say to it
                connection.close()
        if self.connections:
            self._all_closed = asyncio.Event()
        self.hub.flush()  # writes every goodbye, then closes each connection
        if self._all_closed is not None and self.connections:
            try:
                await asyncio.wait_for(self._all_closed.wait(), SHUTDOWN_GRACE_SECONDS)
            except asyncio.TimeoutError:
                log.warning(
                    "%d connections still had output after %.0f s; dropping them",
                    len(self.connections),
                    SHUTDOWN_GRACE_SECONDS,
                )
                for connection in list(self.connections):
                    connection.abort()
        if self.cluster is not None:
            await self.cluster.stop()
        self._passwords.shutdown(wait=False, cancel_futures=True)
        # Since Python 3.12 this also waits for the connections, hence only after closing them.
        for listener in self._listeners:
            await listener.wait_closed()
        if self.http is not None:
            await self.http.stop()


def _behind_the_music() -> None:
    """Run this worker thread at a lower priority than the event loop: in a storm of registers
    the kernel then gives the routing its CPU first, and the hashing takes what is left."""
    with contextlib.suppress(AttributeError, OSError):  # not everywhere; the checks still run
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_NICENESS)


def _run_all(checks: list[PasswordCheck]) -> None:
    for check in checks:
        check.run()
