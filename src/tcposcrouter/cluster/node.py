"""One router process as a node of a cluster on Redis (docs/cluster.md): the facade the command
line builds and hands to the running router (`RouterServer.cluster`).

It wires the parts, each with one job:

- `link` (RedisLink): the connection to Redis, reconnecting with backoff, the degraded state
  while Redis is away, the heartbeat and the sweep of dead nodes;
- `presence_sync` (PresenceSync): this node's users announced, the others' read again, their
  events applied to the hub's user lists;
- `traffic` (Outbound, the hub's `Elsewhere`; Inbound, what pub/sub brings);
- `writer` (StoreWriter): leaves and failed logins, in order;
- `register_round` (RegisterRound, pure): the decisions of a batch of registers through the
  store, which `finish_checks` carries out here with Redis and the worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..core.auth import PasswordHash
from ..core.directory import MembershipEvent
from ..core.login import PasswordCheck
from ..core.session import SessionState
from ..server.running import ClusterStatistics, RunChecks, RunningRouter
from .link import HEARTBEAT_SECONDS, STORE_TIMEOUT, RedisLink
from .presence import RemotePresence
from .presence_sync import PresenceSync
from .publisher import PacketPublisher
from .register_round import (
    RegisterRound,
    StoreKeptChanging,
    join_arguments,
    leave_needed,
    split_when_away,
    store_unavailable,
)
from .startup import check_before_joining
from .store import JOIN_SCRIPT, Keys
from .traffic import Inbound, Outbound
from .wire import LoginFailure
from .writer import Leave, StoreWriter

__all__ = ["PREFIX", "ClusterNode", "default_node_id"]

log = logging.getLogger("tcposcrouter.cluster")

PREFIX = "tcposcrouter:"


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterNode:
    def __init__(self, router: RunningRouter, url: str, node_id: str) -> None:
        self._router = router
        self._hub = router.hub
        self.url = url
        self.node = node_id
        self.keys = keys = Keys(PREFIX)
        self.presence = RemotePresence(node_id)
        self.link = RedisLink(url, node_id, keys)
        self.writer = StoreWriter(self.link, keys, node_id)
        self.outbound = Outbound(keys, self.presence, self.link)
        self._registers_in_flight = 0
        self.presence_sync = PresenceSync(
            router, keys, node_id, self.presence, lambda: self._registers_in_flight
        )
        self.inbound = Inbound(router, keys, node_id, self.presence_sync)
        self._pubsub: Any = None  # redis.asyncio.client.PubSub, while the link is up
        self._tasks: list[asyncio.Task[None]] = []
        self._hash_cache: dict[bytes, PasswordHash] = {}

    @property
    def degraded(self) -> bool:
        return self.link.degraded

    # -- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, and serve in the background. Returns once connected, or after
        `STORE_TIMEOUT` if Redis is away: the node then starts degraded and joins the cluster
        when Redis comes. Raises `ClusterRefused` if the cluster is misconfigured (startup.py)."""
        link = self.link
        # Raises ClusterRefused for a misconfiguration (a Redis not up yet is none).
        await check_before_joining(
            self.url, link.shown_url, self.keys, self.node, STORE_TIMEOUT, HEARTBEAT_SECONDS
        )
        port = self._hub.cluster
        port.connect(self.outbound)
        port.subscribe(self._membership)
        port.subscribe_login_failures(self._login_failed)
        running = link.run(
            self._up, self._serving, self.presence_sync.resync_and_forget, self._down
        )
        self._tasks.append(asyncio.create_task(running))
        self._tasks.append(asyncio.create_task(self.writer.run()))
        try:
            await asyncio.wait_for(link.connected.wait(), STORE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning(
                "cluster degraded: Redis at %s not reached; routing among this node's "
                "connections, trying again",
                self.link.shown_url,
                extra={"console": True},
            )

    async def stop(self) -> None:
        await self.link.leave()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._down()
        await self.link.disconnect()

    def statistics(self) -> ClusterStatistics:
        return ClusterStatistics(
            node=self.node,
            degraded=self.degraded,
            nodes_seen=self.presence_sync.nodes_seen,
            published=self.outbound.published,
            received=self.inbound.received,
            unsent=self.outbound.unsent,
        )

    # -- the link's hooks ---------------------------------------------------------------

    async def _up(self, redis: aioredis.Redis) -> None:
        self.outbound.publisher = await PacketPublisher.connect(self.url, STORE_TIMEOUT)
        pubsub = self._pubsub = redis.pubsub()
        await pubsub.subscribe(*self.inbound.channels)
        await self.presence_sync.announce(redis)
        await self.presence_sync.resync(redis)

    def _serving(self) -> list[Any]:
        publisher = self.outbound.publisher
        assert publisher is not None
        return [self.inbound.read(self._pubsub), publisher.read_replies()]

    async def _down(self) -> None:
        pubsub, publisher = self._pubsub, self.outbound.publisher
        self._pubsub = self.outbound.publisher = None
        if publisher is not None:
            publisher.close()
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()

    # -- from the hub ----------------------------------------------------------------------

    def _login_failed(self, address: str, group: str, user: str) -> None:
        if not self.degraded:
            self.writer.put(LoginFailure(self.node, address, group, user))

    def _membership(self, event: MembershipEvent) -> None:
        if event.kind == "left" and event.connections == 0 and not self.degraded:
            self.writer.put(Leave(event.group, event.user))

    # -- registers ------------------------------------------------------------------------

    async def finish_checks(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        """Carry a batch of the hub's password checks through the store and the worker
        threads (`run` runs checks there), then hand each back to its connection."""
        self._registers_in_flight += 1
        try:
            await self._finish_checks(batch, run)
        finally:
            self._registers_in_flight -= 1

    async def _finish_checks(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        router, hub = self._router, self._hub
        if self.degraded:
            local, refused = split_when_away(batch)
            for check in refused:
                hub.checks.refused(check, store_unavailable(), router.now())
            router.output_ready()
            if local:
                await run(local)
                self._hand_back(local)
            return
        round_ = RegisterRound(batch, self._parse, hub.directory)
        try:
            await asyncio.wait_for(self._learn(round_), STORE_TIMEOUT)
            await run(batch)
            while lost := await asyncio.wait_for(self._claim(round_), STORE_TIMEOUT):
                await run(lost)  # another node created the group or user first
        except (RedisError, OSError, asyncio.TimeoutError, StoreKeptChanging) as error:
            log.warning("cluster: registers refused, the store did not answer: %r", error)
            for check in batch:
                if check.session.state is SessionState.NEW:
                    hub.checks.refused(check, store_unavailable(), router.now())
            router.output_ready()
            return
        self._hand_back(batch)

    def _hand_back(self, batch: list[PasswordCheck]) -> None:
        directory = self._hub.directory
        for check in batch:
            session = check.session
            if session.state is SessionState.NEW:  # not closed meanwhile
                connection = self._router.connections.of(session.id)
                if connection is not None:
                    connection.password_checked(check)
            if leave_needed(check, directory):
                self.writer.put(Leave(check.request.group, check.request.user))

    def _redis(self) -> aioredis.Redis:
        redis = self.link.redis
        if redis is None:
            raise ConnectionError("Redis went away")
        return redis

    async def _learn(self, round_: RegisterRound) -> None:
        keys = self.keys
        async with self._redis().pipeline(transaction=False) as pipe:
            for group, user in round_.lookups():
                pipe.hget(keys.groups, group)
                pipe.hget(keys.users(group), user)
            round_.learn(await pipe.execute())

    async def _claim(self, round_: RegisterRound) -> list[PasswordCheck]:
        claims = round_.claims()
        if not claims:
            return round_.claimed([])
        async with self._redis().pipeline(transaction=False) as pipe:
            for claim in claims:
                pipe.eval(JOIN_SCRIPT, 0, *join_arguments(PREFIX, self.node, claim))
            return round_.claimed(await pipe.execute())

    def _parse(self, stored: bytes | None) -> PasswordHash | None:
        if stored is None:
            return None
        cached = self._hash_cache.get(stored)
        if cached is None:
            if len(self._hash_cache) > 10_000:
                self._hash_cache.clear()
            cached = self._hash_cache[stored] = PasswordHash.parse(stored.decode())
        return cached
