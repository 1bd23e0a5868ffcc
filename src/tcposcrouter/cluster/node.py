"""One router process as a node of a cluster on Redis (redis-py's asyncio client).

What this shell adds to a running router (`RouterServer`):

- **Registers.** Every password check goes through the store: the hashes it holds for the
  group and the user are learnt first (`PasswordCheck.learn`), the check runs in a worker
  thread as usual, and the join script then creates the group and the user if they are new, or
  tells that another node created them first, with another hash: then the check runs again
  against that hash. So two nodes creating one group at the same moment cannot both win.
- **Packets.** What the hub sends elsewhere (`Elsewhere`: a group with users on other nodes) is
  published on the channel of each node that has users of the group: everything one turn of
  the loop had for one node is one message, written in order on a connection of its own
  (`_PacketPublisher`). Members on this node got it directly, without Redis. What arrives on
  this node's own channel goes to `Hub.deliver_from_elsewhere` (measured: one message per
  group and packet cost the receiving node far more than the deliveries themselves).
- **Presence.** Joins and leaves are published by the store's scripts; every node keeps a
  `RemotePresence` and tells the hub (`remote_joined`, `remote_left`). A heartbeat key that
  expires after `HEARTBEAT_TTL` marks a node alive; a node whose key is gone is swept by the
  others, and its users leave every user list.
- **Failed logins** are published, and counted by every node's throttle.
- **Redis away.** The node goes on routing among its own connections, reports itself degraded
  (log, `/healthz`, metrics), admits registers only where it knows the hashes itself, and
  reconnects with backoff; then it re-announces its users and re-reads the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

from ..core.auth import PasswordHash
from ..core.directory import MembershipEvent
from ..core.login import PasswordCheck
from ..core.session import SessionState
from ..errors import ErrorCode, RemoteError
from .presence import RemotePresence
from .resp import ReplyCounter, encode_command
from .store import DEAD_NODE_SCRIPT, JOIN_SCRIPT, LEAVE_SCRIPT, Keys
from .wire import (
    SEP,
    LoginFailure,
    decode_failure,
    decode_presence,
    decode_traffic,
    encode_broadcast,
    encode_failure,
    encode_private,
)

if TYPE_CHECKING:
    from ..server.app import RouterServer

__all__ = ["ClusterNode", "ClusterStatistics", "default_node_id"]

log = logging.getLogger("tcposcrouter.cluster")

# A node's heartbeat key lives this long, and is renewed every HEARTBEAT_SECONDS: a node killed
# outright is noticed by the others within HEARTBEAT_TTL + SWEEP_SECONDS (7 s).
HEARTBEAT_SECONDS = 1.0
HEARTBEAT_TTL = 5.0
SWEEP_SECONDS = 2.0
# How often the whole picture of who is where is read again, in case an event was missed
# (a reconnection); events keep it current in between.
RESYNC_SECONDS = 10.0
# Reconnecting to Redis: 0.5 s, doubling, at most 10 s between tries.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0
# How long a register waits for the store before it is refused as `store_unavailable`.
STORE_TIMEOUT = 3.0
PREFIX = "tcposcrouter:"
# Connections to Redis besides pub/sub's and the packets': registers, heartbeats, leaves and
# failed logins share them.
STORE_CONNECTIONS = 8


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ClusterStatistics:
    node: str
    degraded: bool
    nodes_seen: int  # other nodes with users here, as of the last resync
    published: int  # messages published to other nodes
    received: int  # messages received from other nodes
    unsent: int  # packets for other nodes not sent because Redis was away


class ClusterNode:
    def __init__(self, server: RouterServer, url: str, node_id: str) -> None:
        self._server = server
        self._hub = server.hub
        self.url = url
        self.node = node_id
        self.keys = Keys(PREFIX)
        self.presence = RemotePresence(node_id)
        self.degraded = True  # until the first connection
        self._redis: aioredis.Redis | None = None
        self._pubsub: Any = None  # redis.asyncio.client.PubSub
        self._tasks: list[asyncio.Task[None]] = []
        self._outgoing: list[tuple[str, Any]] = []  # ("leave", (group, user)), ("failure", data)
        self._wakeup = asyncio.Event()
        # Traffic records for each other node, gathered over one turn of the loop.
        self._for_nodes: dict[str, list[bytes]] = {}
        self._packets_queued = 0
        self._flush_scheduled = False
        self._packets: _PacketPublisher | None = None  # its own connection, see resp.py
        self._connected = asyncio.Event()
        self._stopping = False
        self._published = self._received = self._unsent = 0
        self._nodes_seen = 0
        self._hash_cache: dict[bytes, PasswordHash] = {}
        # Registers between their join in the store and their join here: while there are
        # any, what the store has of this node is not compared with what is here.
        self._checks_in_flight = 0
        self._swept_own = False  # what a former node of this name left in the store

    # -- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, and serve in the background. Returns once connected, or after
        `STORE_TIMEOUT` if Redis is away: the node then starts degraded and joins the cluster
        when Redis comes."""
        hub = self._hub
        hub.set_elsewhere(self)
        hub.subscribe(self._membership)
        hub.subscribe_login_failures(self._login_failed)
        self._tasks.append(asyncio.create_task(self._connection_loop()))
        self._tasks.append(asyncio.create_task(self._store_writer()))
        try:
            await asyncio.wait_for(self._connected.wait(), STORE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning(
                "cluster degraded: Redis at %s not reached; routing among this node's "
                "connections, trying again",
                self.url,
                extra={"console": True},
            )

    async def stop(self) -> None:
        """Leave the cluster: this node's users leave every user list at once (not after the
        heartbeat expires)."""
        self._stopping = True
        redis = self._redis
        if redis is not None and not self.degraded:
            with contextlib.suppress(RedisError, OSError):
                await asyncio.wait_for(
                    redis.eval(DEAD_NODE_SCRIPT, 0, PREFIX, self.node), STORE_TIMEOUT
                )
                await redis.delete(self.keys.alive(self.node))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._disconnect()

    def statistics(self) -> ClusterStatistics:
        return ClusterStatistics(
            node=self.node,
            degraded=self.degraded,
            nodes_seen=self._nodes_seen,
            published=self._published,
            received=self._received,
            unsent=self._unsent,
        )

    # -- the connection to Redis ----------------------------------------------------------

    async def _disconnect(self) -> None:
        pubsub, redis, packets = self._pubsub, self._redis, self._packets
        self._pubsub = self._redis = self._packets = None
        if packets is not None:
            packets.close()
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if redis is not None:
                await redis.aclose()

    async def _connection_loop(self) -> None:
        delay = RECONNECT_FIRST
        while not self._stopping:
            try:
                await self._connect()
            except (RedisError, OSError) as error:
                if not self.degraded:
                    self._go_degraded(error)
                await self._disconnect()
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)
                continue
            delay = RECONNECT_FIRST
            try:
                await self._serve()
            except (RedisError, OSError) as error:
                self._go_degraded(error)
                await self._disconnect()

    def _go_degraded(self, error: BaseException) -> None:
        if not self.degraded:
            log.warning(
                "cluster degraded: lost Redis at %s (%s); routing goes on among this node's "
                "connections, reconnecting",
                self.url,
                error,
                extra={"console": True},
            )
        self.degraded = True
        self._connected.clear()

    async def _connect(self) -> None:
        # A storm of registers runs many batches at once: they wait for one of a few
        # connections rather than open one each.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=STORE_CONNECTIONS,
            timeout=STORE_TIMEOUT,
            socket_connect_timeout=STORE_TIMEOUT,
        )
        redis = aioredis.Redis(connection_pool=pool)
        self._redis = redis
        if not self._swept_own:
            # A node starting under a name a dead one had: what that one left is swept first.
            await redis.eval(DEAD_NODE_SCRIPT, 0, PREFIX, self.node)
            self._swept_own = True
        await self._heartbeat_once()
        self._packets = await _PacketPublisher.connect(self.url)
        pubsub = self._pubsub = redis.pubsub()
        keys = self.keys
        await pubsub.subscribe(
            keys.node_channel(self.node), keys.presence_channel, keys.logins_channel
        )
        await self._announce_local_users()
        await self._resync()
        was_degraded = self.degraded
        self.degraded = False
        self._connected.set()
        if was_degraded:
            log.info(
                "cluster: node %s on Redis at %s", self.node, self.url, extra={"console": True}
            )

    async def _serve(self) -> None:
        """Read pub/sub and keep the heartbeat until Redis goes away (raises)."""
        assert self._packets is not None
        reader = asyncio.create_task(self._read_pubsub())
        keeper = asyncio.create_task(self._keep_alive())
        replies = asyncio.create_task(self._packets.read_replies())
        tasks = {reader, keeper, replies}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionError("the connection for packets was closed")
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _heartbeat_once(self) -> None:
        redis = self._redis
        assert redis is not None
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.alive(self.node), b"1", px=int(HEARTBEAT_TTL * 1000))
            pipe.sadd(self.keys.nodes, self.node)
            await pipe.execute()

    async def _keep_alive(self) -> None:
        last_sweep = last_resync = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._heartbeat_once()
            now = time.monotonic()
            if now - last_sweep >= SWEEP_SECONDS:
                last_sweep = now
                await self._sweep_dead_nodes()
            if now - last_resync >= RESYNC_SECONDS:
                last_resync = now
                await self._resync()
                await self._forget_gone_users()

    async def _sweep_dead_nodes(self) -> None:
        redis = self._redis
        assert redis is not None
        nodes = [_text(n) for n in await redis.smembers(self.keys.nodes)]
        others = [n for n in nodes if n != self.node]
        if not others:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(self.keys.alive(other))
            alive = await pipe.execute()
        for other, exists in zip(others, alive, strict=True):
            if not exists:
                gone = await redis.eval(DEAD_NODE_SCRIPT, 0, PREFIX, other)
                log.warning(
                    "cluster: node %s stopped answering; %d of its users left",
                    other,
                    gone,
                    extra={"console": True},
                )

    async def _announce_local_users(self) -> None:
        """(Re)connected: every user connected here is present in the store again (the store
        may have been restarted, or this node swept while it was away), and what the store
        still has of this node that is gone meanwhile leaves."""
        redis = self._redis
        assert redis is not None
        for group in self._hub.directory.groups.values():
            for user in group.users.values():
                if not user.sessions or user.password is None or group.password is None:
                    continue
                answer = await redis.eval(
                    JOIN_SCRIPT, 0, *self._join_args(group.name, user.name,
                                                     group.password, user.password)
                )  # fmt: skip
                if answer[0] != b"ok":
                    log.warning(
                        "cluster: %s@%s is here with another %s password than the store has "
                        "(created elsewhere while Redis was away); it stays connected",
                        user.name,
                        group.name,
                        answer[0].decode(),
                    )
        await self._forget_gone_users()

    async def _forget_gone_users(self) -> None:
        """What the store has of this node but is not connected here (left while Redis was
        away, or a register refused after its join was stored) leaves."""
        redis = self._redis
        assert redis is not None
        local = {
            (group.name, user.name)
            for group in self._hub.directory.groups.values()
            for user in group.users.values()
            if user.sessions
        }
        stored = await redis.smembers(self.keys.node_users(self.node))
        for entry in stored:
            group_name, _, user_name = _text(entry).partition(SEP)
            if (group_name, user_name) not in local and not self._checks_in_flight:
                await redis.eval(LEAVE_SCRIPT, 0, PREFIX, self.node, group_name, user_name)

    async def _resync(self) -> None:
        """Read where every user of every live node is, and correct the hub's user lists."""
        redis = self._redis
        assert redis is not None
        nodes = [_text(n) for n in await redis.smembers(self.keys.nodes)]
        others = [n for n in nodes if n != self.node]
        snapshot: list[tuple[str, str, str]] = []
        if others:
            async with redis.pipeline(transaction=False) as pipe:
                for other in others:
                    pipe.exists(self.keys.alive(other))
                    pipe.smembers(self.keys.node_users(other))
                answers = await pipe.execute()
            for index, other in enumerate(others):
                if not answers[2 * index]:
                    continue
                for entry in answers[2 * index + 1]:
                    group, _, user = _text(entry).partition(SEP)
                    snapshot.append((other, group, user))
        self._nodes_seen = len({node for node, _, _ in snapshot})
        came, went = self.presence.replace(snapshot)
        for group, user in came:
            self._hub.remote_joined(group, user)
        for group, user in went:
            self._hub.remote_left(group, user)
        if came or went:
            self._server.output_ready()

    # -- pub/sub in -----------------------------------------------------------------------

    async def _read_pubsub(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        keys = self.keys
        mine = keys.node_channel(self.node).encode()
        presence, logins = keys.presence_channel.encode(), keys.logins_channel.encode()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None:
                continue
            channel, data = message["channel"], message["data"]
            try:
                if channel == mine:
                    self._traffic(data)
                elif channel == presence:
                    self._presence_event(data)
                elif channel == logins:
                    self._failure_from_elsewhere(data)
            except (ValueError, UnicodeDecodeError) as error:
                log.warning("cluster: ignored a message on %r: %s", channel, error)

    def _traffic(self, data: bytes) -> None:
        self._received += 1
        hub = self._hub
        for traffic in decode_traffic(data):
            if traffic.private:
                hub.deliver_private_from_elsewhere(traffic.group, traffic.name, traffic.packets[0])
            else:
                for packet in traffic.packets:
                    hub.deliver_from_elsewhere(traffic.group, traffic.name, packet)
        self._server.output_ready()

    def _presence_event(self, data: bytes) -> None:
        event = decode_presence(data)
        if event.node == self.node:
            return
        if event.kind == "J":
            if self.presence.joined(event.node, event.group, event.user):
                self._hub.remote_joined(event.group, event.user)
        elif self.presence.left(event.node, event.group, event.user):
            self._hub.remote_left(event.group, event.user)
        self._server.output_ready()

    def _failure_from_elsewhere(self, data: bytes) -> None:
        failure = decode_failure(data)
        if failure.node != self.node:
            self._hub.login_failed_elsewhere(
                failure.address, failure.group, failure.user, self._server.now()
            )

    # -- out: Elsewhere (called by the hub, on the hot path) ------------------------------

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None:
        nodes = self.presence.nodes_in(group)
        if nodes:
            self._to_nodes(nodes, encode_broadcast(group, sender, packets), len(packets))

    def private(self, group: str, target: str, message: bytes) -> None:
        nodes = self.presence.nodes_of(group, target)
        if nodes:
            self._to_nodes(nodes, encode_private(group, target, message), 1)

    def _to_nodes(self, nodes: Iterable[str], record: bytes, packets: int) -> None:
        if self.degraded:
            self._unsent += packets
            return
        for node in nodes:
            self._for_nodes.setdefault(node, []).append(record)
        self._packets_queued += packets
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_to_nodes)

    def _flush_to_nodes(self) -> None:
        """End of the loop turn: one message per node with everything the turn had for it."""
        self._flush_scheduled = False
        keys, publisher = self.keys, self._packets
        packets, self._packets_queued = self._packets_queued, 0
        if publisher is None or not publisher.open:
            self._unsent += packets
        else:
            for node, records in self._for_nodes.items():
                publisher.publish(keys.node_channel(node).encode(), b"".join(records))
                self._published += 1
        self._for_nodes = {}

    def _login_failed(self, address: str, group: str, user: str) -> None:
        if not self.degraded:
            failure = LoginFailure(self.node, address, group, user)
            self._queue("failure", encode_failure(failure))

    def _membership(self, event: MembershipEvent) -> None:
        if event.kind == "left" and event.connections == 0 and not self.degraded:
            self._queue("leave", (event.group, event.user))

    def _queue(self, kind: str, item: Any) -> None:
        self._outgoing.append((kind, item))
        if len(self._outgoing) == 1:
            self._wakeup.set()

    async def _store_writer(self) -> None:
        """Leaves and failed logins, in the order they came, everything one turn of the loop
        queued in one pipeline (packets go through `_PacketPublisher` instead)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._outgoing = self._outgoing, []
            redis = self._redis
            if not batch or redis is None or self.degraded:
                continue  # what the store misses meanwhile is mended on reconnection
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for kind, item in batch:
                        if kind == "failure":
                            pipe.publish(self.keys.logins_channel, item)
                        else:
                            pipe.eval(LEAVE_SCRIPT, 0, PREFIX, self.node, *item)
                    await pipe.execute()
            except (RedisError, OSError) as error:
                log.debug("cluster: writing to the store failed: %s", error)

    # -- registers ------------------------------------------------------------------------

    async def finish_checks(
        self, batch: list[PasswordCheck], run: Callable[[list[PasswordCheck]], Any]
    ) -> None:
        """Carry a batch of the hub's password checks through the store and the worker
        threads (`run` runs checks there), then hand each back to its connection."""
        self._checks_in_flight += 1
        try:
            await self._finish_checks(batch, run)
        finally:
            self._checks_in_flight -= 1

    async def _finish_checks(
        self, batch: list[PasswordCheck], run: Callable[[list[PasswordCheck]], Any]
    ) -> None:
        now = self._server.now
        if self.degraded:
            local = []
            for check in batch:
                if _needs_store(check):
                    self._hub.check_refused(check, _unavailable(), now())
                else:
                    local.append(check)
            self._server.output_ready()
            if local:
                await run(local)
                self._hand_back(local)
            return
        try:
            await asyncio.wait_for(self._learn(batch), STORE_TIMEOUT)
            await run(batch)
            pending = batch
            for _ in range(3):
                lost = await asyncio.wait_for(self._claim(pending), STORE_TIMEOUT)
                if not lost:
                    break
                # Another node created the group or user first: check against its hash.
                await run(lost)
                pending = lost
            else:
                raise asyncio.TimeoutError("the group kept changing in the store")
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            log.warning("cluster: registers refused, the store did not answer: %r", error)
            for check in batch:
                if check.session.state is SessionState.NEW:
                    self._hub.check_refused(check, _unavailable(), now())
            self._server.output_ready()
            return
        self._hand_back(batch)

    def _hand_back(self, batch: list[PasswordCheck]) -> None:
        from ..server.app import Connection  # the sink of every session is a connection

        for check in batch:
            if check.session.state is not SessionState.NEW:  # closed meanwhile
                if check.group_ok and check.user_ok:
                    self._undo_presence(check)
                continue
            connection: Connection = check.session.mailbox.sink  # type: ignore[assignment]
            connection.password_checked(check)
            if not _registered(check) and check.session.check is None:
                self._undo_presence(check)

    def _undo_presence(self, check: PasswordCheck) -> None:
        """The store counted the user present here, but the hub refused the register."""
        request = check.request
        group = self._hub.directory.groups.get(request.group)
        user = None if group is None else group.users.get(request.user)
        if user is None or not user.sessions:
            self._queue("leave", (request.group, request.user))

    async def _learn(self, batch: list[PasswordCheck]) -> None:
        redis = self._redis
        assert redis is not None
        async with redis.pipeline(transaction=False) as pipe:
            for check in batch:
                pipe.hget(self.keys.groups, check.request.group)
                pipe.hget(self.keys.users(check.request.group), check.request.user)
            answers = await pipe.execute()
        for index, check in enumerate(batch):
            check.learn(self._parse(answers[2 * index]), self._parse(answers[2 * index + 1]))

    async def _claim(self, batch: list[PasswordCheck]) -> list[PasswordCheck]:
        """Run the join script for every check that passed; return those that lost a creation
        race, having learnt the winning hashes."""
        redis = self._redis
        assert redis is not None
        passed = [c for c in batch if c.group_ok and c.user_ok]
        if not passed:
            return []
        async with redis.pipeline(transaction=False) as pipe:
            for check in passed:
                group_hash = check.group_hash or check.new_group_hash
                user_hash = check.user_hash or check.pinned_user_hash or check.new_user_hash
                assert group_hash is not None and user_hash is not None
                pipe.eval(
                    JOIN_SCRIPT,
                    0,
                    *self._join_args(check.request.group, check.request.user, group_hash,
                                     user_hash),
                )  # fmt: skip
            answers = await pipe.execute()
        lost: list[PasswordCheck] = []
        for check, answer in zip(passed, answers, strict=True):
            if answer[0] == b"group":
                check.learn(self._parse(answer[1]), check.elsewhere_user_hash)
                lost.append(check)
            elif answer[0] == b"user":
                check.learn(check.elsewhere_group_hash, self._parse(answer[1]))
                lost.append(check)
        return lost

    def _join_args(
        self,
        group: str,
        user: str,
        group_hash: PasswordHash,
        user_hash: PasswordHash,
    ) -> list[str]:
        """The join script's arguments. The hashes of a pinned group and of its pinned users
        are the configuration's, so the script is told not to store them."""
        known = self._hub.directory.groups.get(group)
        spec = None if known is None else known.pinned
        pinned = spec is not None
        pinned_user = spec is not None and user in spec.users
        return [
            PREFIX,
            self.node,
            group,
            user,
            group_hash.encode(),
            user_hash.encode(),
            "1" if pinned else "0",
            "1" if pinned_user else "0",
        ]

    def _parse(self, stored: bytes | None) -> PasswordHash | None:
        if stored is None:
            return None
        cached = self._hash_cache.get(stored)
        if cached is None:
            if len(self._hash_cache) > 10_000:
                self._hash_cache.clear()
            cached = self._hash_cache[stored] = PasswordHash.parse(stored.decode())
        return cached


class _PacketPublisher:
    """A connection of its own for the packets to other nodes: PUBLISH commands written back to
    back in the order the loop makes them, replies only counted (resp.py says why this is not
    redis-py)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._replies = ReplyCounter()
        self.open = True
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    async def connect(cls, url: str) -> _PacketPublisher:
        settings = parse_url(url)
        if "path" in settings:  # unix://
            opening = asyncio.open_unix_connection(settings["path"])
        else:
            secure = ssl.create_default_context() if url.startswith("rediss://") else None
            opening = asyncio.open_connection(
                settings.get("host", "localhost"), settings.get("port", 6379), ssl=secure
            )
        reader, writer = await asyncio.wait_for(opening, STORE_TIMEOUT)
        publisher = cls(reader, writer)
        password = settings.get("password")
        if password is not None:
            user = settings.get("username")
            parts = [b"AUTH", *([user.encode()] if user else []), password.encode()]
            writer.write(encode_command(*parts))
            line = await asyncio.wait_for(reader.readline(), STORE_TIMEOUT)
            if not line.startswith(b"+"):
                writer.close()
                raise ConnectionError(f"Redis refused the password: {line.strip().decode()}")
        return publisher

    def publish(self, channel: bytes, data: bytes) -> None:
        self._writer.write(encode_command(b"PUBLISH", channel, data))

    async def read_replies(self) -> None:
        """Until the connection ends (then return), counting replies; an error reply is a
        bug or a misconfigured Redis, and is logged."""
        counter = self._replies
        try:
            while True:
                data = await self._reader.read(1 << 16)
                if not data:
                    return
                counter.feed(data)
                for error in counter.errors:
                    log.warning("cluster: Redis refused a publish: %s", error)
                counter.errors.clear()
        finally:
            self.open = False

    def close(self) -> None:
        self.open = False
        self._writer.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _registered(check: PasswordCheck) -> bool:
    return check.session.state is SessionState.REGISTERED


def _needs_store(check: PasswordCheck) -> bool:
    """Whether a register cannot be decided without the store: it would create a group or a
    user, or checks against a hash only the store has."""
    return check.group_hash is None or (check.user_hash is None and check.pinned_user_hash is None)


def _unavailable() -> RemoteError:
    return RemoteError(
        ErrorCode.STORE_UNAVAILABLE,
        "the router's shared store is unavailable for a moment; try again in a few seconds",
        fatal=True,
    )
