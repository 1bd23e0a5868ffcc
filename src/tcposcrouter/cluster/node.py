"""One router process as a node of a cluster on Redis (docs/cluster.md): the facade the command
line builds and hands to the running router (`RouterServer.cluster`).

It wires the parts, each with one job:

- `link` (RedisLink): the connection to Redis, reconnecting with backoff, the degraded state
  while Redis is away, the heartbeat and the sweep of dead nodes;
- `presence_sync` (PresenceSync): this node's users announced, the others' read again, their
  events applied to the hub's user lists;
- `traffic` (Outbound, the hub's `Elsewhere`; Inbound, what pub/sub brings);
- `ensemble` (SharedEnsemble): the groups' tempo and state in the store;
- `writer` (StoreWriter): leaves and failed logins, in order;
- `registers` (StoreRegisters): batches of registers carried through the store, with the
  decisions of `register_round` (pure);
- `recovery` (StoreRecovery, pure): whether the store lost its memory, and who has yet to
  write back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

import redis.asyncio as aioredis

from ..core.directory import MembershipEvent
from ..core.register import PasswordCheck
from ..server.running import ClusterStatistics, RunChecks, RunningRouter
from .ensemble import SharedEnsemble
from .link import HEARTBEAT_SECONDS, STORE_TIMEOUT, RedisLink
from .presence import RemotePresence
from .presence_sync import PresenceSync
from .publisher import PacketPublisher
from .recovery import RECOVERY_SECONDS, StoreRecovery
from .registers import StoreRegisters
from .startup import check_before_joining
from .store import Keys
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
        self.outbound = Outbound(keys, self.presence, self.link, node_id)
        self.recovery = StoreRecovery()
        self.ensemble = SharedEnsemble(router, self.link, keys, node_id, self.presence)
        self.registers = StoreRegisters(
            router, self.link, keys, self.presence, self.recovery, self.writer, self.ensemble
        )
        self.presence_sync = PresenceSync(
            router, keys, node_id, self.presence, lambda: self.registers.in_flight
        )
        self.inbound = Inbound(router, keys, node_id, self.presence_sync, self.ensemble)
        self._pubsub: Any = None  # redis.asyncio.client.PubSub, while the link is up
        self._tasks: list[asyncio.Task[None]] = []

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
        port.connect(self.outbound, self.ensemble)
        port.subscribe(self._membership)
        port.subscribe_login_failures(self._login_failed)
        running = link.run(self._up, self._serving, self._resync, self._down)
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
        await self._check_generation(redis)  # before writing back: was the store emptied?
        await self.presence_sync.announce(redis)
        await self.presence_sync.resync(redis)
        # Before pub/sub is read: its records after the store's copies apply on top of them.
        await self.ensemble.restore(redis)

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
        await self.registers.finish(batch, run)

    # -- the store's generation -----------------------------------------------------------

    async def _check_generation(self, redis: aioredis.Redis) -> bool:
        """Read the store's generation (making one if it has none); True if the store lost
        what it held since this node last looked (cluster/recovery.py)."""
        keys = self.keys
        await redis.set(keys.generation, uuid.uuid4().hex, nx=True)
        generation = await redis.get(keys.generation) or b""  # flushed in between: as new
        if isinstance(generation, str):
            generation = generation.encode()
        lost = self.recovery.seen(generation, self._router.now(), self.presence.others())
        if lost:
            log.warning(
                "cluster: Redis at %s lost what it held (restarted without persistence, or "
                "flushed); this node writes its users back, and registers that would make a "
                "group or a user wait until the other nodes have too (at most %.0f s)",
                self.link.shown_url,
                RECOVERY_SECONDS,
                extra={"console": True},
            )
        return lost

    async def _resync(self, redis: aioredis.Redis) -> None:
        if await self._check_generation(redis):
            await self.presence_sync.announce(redis)
            await self.ensemble.restore(redis)
        else:
            await self.presence_sync.rejoin_apart(redis)
        await self.presence_sync.resync_and_forget(redis)
