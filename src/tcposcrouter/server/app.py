"""The running router: the hub, its listeners and connections, the flush per loop turn, the
once-a-second tick, statistics, reload and shutdown.

Output leaves once per turn of the event loop: after any call into the hub that queued output,
`output_ready()` schedules one `flush` with `call_soon`, which runs after every callback of the
current turn, before the loop waits for new events. So everything the turn's reads produced for
one receiver, from all senders, leaves in one write, and a lone message leaves in the turn it
arrived.

The parts: `listeners` opens the ports, `passwords` runs the password checks in worker threads,
`tcp` and `websocket` are the connections, `http` the HTTP port; a cluster node (cluster/) is
handed in by the command line as `cluster` before `start`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import logging
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.auth import PasswordHash
from ..core.hub import Hub
from ..core.session import Session
from .config import RELOADABLE, ServerConfig
from .handoff import HTTP, RELAY, Handoff
from .listeners import Listener, open_osc_ports, tune_listeners
from .one_port import OnePort
from .passwords import PasswordWorkers
from .relay import Relayed, read_relayed
from .running import ClusterEdge, Connection, Connections, ServerStatistics
from .tcp import TcpConnection
from .tls import TlsContext

if TYPE_CHECKING:
    from .http.port import HttpPort

__all__ = ["RouterServer"]

log = logging.getLogger("tcposcrouter.server")

# How long a shutdown waits for queued output to reach the clients before it drops them.
SHUTDOWN_GRACE_SECONDS = 5.0
# How long a shutdown reads on before its goodbye: what clients sent before the signal is in the
# kernel's buffers, and is routed rather than dropped (docs/protocol.md §7, "Goodbye").
LAST_READS_SECONDS = 0.25
# How often timeouts are checked: they are counted in seconds, so once a second is exact enough.
TICK_SECONDS = 1.0
# A turn of the loop that sets up new connections or handles their registers (RouterServer.defer)
# spends at most this long on them, less what the last flush took (a register's user lists are
# written there): the music waits for no turn much longer than this.
TURN_SECONDS = 0.001
# The least a turn gives them, however long the flushes: a storm still gets in.
DEFERRED_LEAST_SECONDS = 0.0002


class RouterServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.hub = Hub(config)
        self.tls = None if config.tls is None else TlsContext(config.tls.cert, config.tls.key)
        self.connections = Connections()
        self.internal_errors = 0
        self.shutting_down = False
        self.started_at = 0.0
        # The dashboard's admin token: given, or made here and printed on the console.
        self.admin_token = config.admin_token or secrets.token_urlsafe(18)
        # A node of a cluster (cluster/node.py), handed in by the command line before `start`.
        self.cluster: ClusterEdge | None = None
        # With --workers: this worker's place among them, set by the command line likewise.
        self.handoff: Handoff | None = None
        self._adopting: set[asyncio.Future[None]] = set()
        self.passwords = PasswordWorkers(self)
        self._http: HttpPort | None = None
        self._one_port: OnePort | None = None
        self._flushes = 0
        self._listeners: list[Listener] = []
        self._all_closed: asyncio.Event | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferred: collections.deque[Callable[[], None]] = collections.deque()
        self._last_flush_seconds = 0.0

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
        started = time.perf_counter()
        self.hub.flush()
        self._last_flush_seconds = time.perf_counter() - started

    def checks_ready(self) -> None:
        """Schedule the hub's waiting password checks to start at the end of this loop turn."""
        self.passwords.ready()

    def defer(self, work: Callable[[], None]) -> None:
        """Do `work` (setting up a new connection, handling what it sent before registering) on
        a later turn of the loop, in order, for at most `TURN_SECONDS` a turn less what the last
        flush took: a thousand clients reconnecting at once then cost a thousand appends in the
        turn they arrive, and the routing of everyone already playing goes on between the
        chunks (the loop polls the network before each)."""
        self._deferred.append(work)
        if len(self._deferred) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._run_deferred)

    def _run_deferred(self) -> None:
        deferred = self._deferred
        clock = time.perf_counter
        deadline = clock() + max(DEFERRED_LEAST_SECONDS, TURN_SECONDS - self._last_flush_seconds)
        while deferred:
            deferred.popleft()()
            if clock() >= deadline:
                break
        if deferred:
            assert self._loop is not None
            self._loop.call_soon(self._run_deferred)

    def hub_failed(self, connection: Connection, session: Session) -> None:
        """Call from the `except` around a call into the hub: an exception out of the hub is a
        bug, not a peer's fault, and must not take the router or anyone else down. Log it and
        drop that connection only."""
        self.internal_errors += 1
        log.exception("internal error on %s; dropping that connection", session.describe())
        connection.reset()

    def _tick(self) -> None:
        assert self._loop is not None
        now = self.now()
        self.hub.set_wall_clock(time.time() - now)
        self.hub.tick(now)
        if self._http is not None:
            self._http.tick(now)
        self.output_ready()
        self._ticker = self._loop.call_later(TICK_SECONDS, self._tick)

    def _take_handed(self, sock: socket.socket, kind: bytes, data: bytes) -> None:
        """A connection another worker accepted and handed here, with what it read of it."""
        sock.setblocking(False)
        if kind == HTTP:
            if self._http is None:
                sock.close()
                return
            work = self._http.adopt(sock, data)
        elif kind == RELAY:
            relayed = read_relayed(data)
            if relayed is None:
                sock.close()
                return
            work = self._adopt(sock, relayed[1], relayed[0])
        else:
            work = self._adopt(sock, data)
        adopting = asyncio.ensure_future(work)
        self._adopting.add(adopting)  # held until done: the loop keeps only weak references
        adopting.add_done_callback(self._adopting.discard)

    async def _adopt(
        self, sock: socket.socket, data: bytes, relayed: Relayed | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.connect_accepted_socket(
                lambda: TcpConnection(self, handed_in=True, relayed=relayed), sock
            )
        except OSError as error:  # the client left meanwhile
            log.debug("a connection handed in was gone: %s", error)
            sock.close()
            return
        connection.data_received(data)  # first, before anything read from here on

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    def statistics(self) -> ServerStatistics:
        doors = None if self._http is None else self._http.doors
        return ServerStatistics(
            hub=self.hub.statistics(),
            uptime_seconds=self.now() - self.started_at,
            flushes=self._flushes,
            internal_errors=self.internal_errors + self.passwords.failures,
            shutting_down=self.shutting_down,
            cluster=None if self.cluster is None else self.cluster.statistics(),
            http_waiting=0 if doors is None else len(doors.pool),
            http_evicted=0 if doors is None else doors.evicted,
        )

    async def check_password(self, expected: PasswordHash, password: str) -> bool:
        """Whether `password` matches `expected` (scrypt, if needed, in a worker thread)."""
        return await self.passwords.check(expected, password)

    async def start(self) -> list[str]:
        """Open the listeners; return the addresses listened on, for the console."""
        self._loop = asyncio.get_running_loop()
        self.started_at = self.now()
        self.hub.set_wall_clock(time.time() - self.started_at)
        config = self.config
        if self.cluster is not None:
            # Joined first (waiting a few seconds for Redis at most), so that the first
            # clients find the cluster; without Redis the node starts degraded.
            await self.cluster.start()  # it logs whether it reached Redis
        tls = None if self.tls is None else self.tls.context
        if self.handoff is not None:
            self.handoff.start(self._take_handed)
        if config.http_port is not None:
            from .http.port import HttpPort  # aiohttp is imported only when the HTTP side is on
        # Everything made so far (the modules, aiohttp's and prometheus-client's included) lives
        # as long as the process: out of the collector's sight, a full collection looks only at
        # what comes from now on, and takes a millisecond or two instead of a dozen. (Before the
        # ports open: the signal handlers are set once they are.)
        gc.collect()
        gc.freeze()
        self._listeners, addresses = await open_osc_ports(self, tls)
        if config.http_port is not None:
            self._http = HttpPort(self)
            scheme = "HTTPS" if tls is not None else "HTTP"
            for address in await self._http.start(
                config.hosts, config.http_port, tls, reuse_port=config.reuse_port
            ):
                addresses.append(
                    f"{address} ({scheme}: OSC over WebSocket at /osc, dashboard at /, /metrics)"
                )
        if config.one_port is not None:
            http = self._http
            self._one_port = OnePort(self, tls, (lambda: None) if http is None else http.door)
            for address in self._one_port.open(config, config.one_port):
                kinds = "OSC in either framing, HTTP" + (", and TLS around them" if tls else "")
                addresses.append(f"{address} (every client: {kinds})")
            self._listeners += self._one_port.listeners
        self._ticker = self._loop.call_later(TICK_SECONDS, self._tick)
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
            tune_listeners(self._listeners, config.limits)
        self.hub.reconfigure(config, self.now())
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

    async def _read_last_words(self) -> None:
        """Turns of the loop until one reads nothing new (at most `LAST_READS_SECONDS`), so
        that what clients had sent before the shutdown reaches their groups."""
        deadline = self.now() + LAST_READS_SECONDS
        seen = -1
        while self.now() < deadline:
            read = self.hub.statistics().bytes_in
            if read == seen:
                return
            seen = read
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting; tell every client the router is shutting down, after what is queued
        for it; close; wait for them (at most `SHUTDOWN_GRACE_SECONDS`); close the HTTP side
        last, so that /healthz says 503 meanwhile."""
        self.shutting_down = True  # /healthz answers 503 from now on
        if self._ticker is not None:
            self._ticker.cancel()
        for listener in self._listeners:
            listener.close()
        if self._one_port is not None:
            self._one_port.close()
        if self.handoff is not None:
            self.handoff.stop()
        await self._read_last_words()
        self.hub.shutdown(self.now())
        for connection in self.connections:
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
                for connection in self.connections:
                    connection.reset()
        if self.cluster is not None:
            await self.cluster.stop()
        self.passwords.shutdown()
        # Since Python 3.12 this also waits for the connections, hence only after closing them.
        for listener in self._listeners:
            await listener.wait_closed()
        if self._http is not None:
            await self._http.stop()
