"""The node's link to Redis, and its liveness: connecting (and reconnecting with backoff), the
degraded state while Redis is away, the heartbeat key that marks this node alive, and the sweep
that lets the users of a node whose heartbeat expired leave.

What the node does once the link is up (subscribe, announce its users, read the others') and
while it is (read pub/sub, resync) are the `Joining` hooks it gives `run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .store import DEAD_NODE_SCRIPT, Keys

__all__ = ["HEARTBEAT_SECONDS", "HEARTBEAT_TTL", "STORE_TIMEOUT", "RedisLink", "without_password"]

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
# How long a register (or the start) waits for the store before giving up on it.
STORE_TIMEOUT = 3.0
# Connections to Redis besides pub/sub's and the packets': registers, heartbeats, leaves and
# failed logins share them.
STORE_CONNECTIONS = 8

# Called once the link is up (its pub/sub subscribed), before the node counts as connected.
OnUp = Callable[[aioredis.Redis], Awaitable[None]]
# The node's own tasks while the link is up; the first to end (raising) ends the link.
Serving = Callable[[], list[Coroutine[Any, Any, None]]]


def without_password(url: str) -> str:
    """`url` as the log may show it: `redis://:secret@host/0` is `redis://:***@host/0`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisLink:
    def __init__(self, url: str, node: str, keys: Keys) -> None:
        self.url = url
        self.shown_url = without_password(url)  # for log lines: never the password
        self.node = node
        self.keys = keys
        self.redis: aioredis.Redis | None = None
        self.degraded = True  # until the first connection
        self.connected = asyncio.Event()
        self.stopping = False
        self._swept_own = False  # what a former node of this name left in the store

    async def run(
        self, on_up: OnUp, serving: Serving, resync: OnUp, on_down: Callable[[], Awaitable[None]]
    ) -> None:
        """Connect, serve until Redis goes away (then `on_down`), reconnect; until
        `stopping`."""
        delay = RECONNECT_FIRST
        while not self.stopping:
            try:
                await self._connect(on_up)
            except (RedisError, OSError) as error:
                if not self.degraded:
                    self._go_degraded(error)
                await on_down()
                await self.disconnect()
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX, delay * 2)
                continue
            delay = RECONNECT_FIRST
            try:
                await self._serve(serving, resync)
            except (RedisError, OSError) as error:
                self._go_degraded(error)
                await on_down()
                await self.disconnect()

    async def leave(self) -> None:
        """Leave the cluster: this node's users leave every user list at once (not after the
        heartbeat expires)."""
        self.stopping = True
        redis = self.redis
        if redis is not None and not self.degraded:
            with contextlib.suppress(RedisError, OSError):
                await asyncio.wait_for(
                    redis.eval(DEAD_NODE_SCRIPT, 0, self.keys.prefix, self.node), STORE_TIMEOUT
                )
                await redis.delete(self.keys.alive(self.node))

    async def disconnect(self) -> None:
        redis, self.redis = self.redis, None
        with contextlib.suppress(Exception):
            if redis is not None:
                await redis.aclose()

    def _go_degraded(self, error: BaseException) -> None:
        if not self.degraded:
            log.warning(
                "cluster degraded: lost Redis at %s (%s); routing goes on among this node's "
                "connections, reconnecting",
                self.shown_url,
                error,
                extra={"console": True},
            )
        self.degraded = True
        self.connected.clear()

    async def _connect(self, on_up: OnUp) -> None:
        # A storm of registers runs many batches at once: they wait for one of a few
        # connections rather than open one each.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=STORE_CONNECTIONS,
            timeout=STORE_TIMEOUT,
            socket_connect_timeout=STORE_TIMEOUT,
        )
        redis = self.redis = aioredis.Redis(connection_pool=pool)
        if not self._swept_own:
            # A node starting under a name a dead one had: what that one left is swept first.
            await redis.eval(DEAD_NODE_SCRIPT, 0, self.keys.prefix, self.node)
            self._swept_own = True
        await self._heartbeat()
        await on_up(redis)
        was_degraded = self.degraded
        self.degraded = False
        self.connected.set()
        if was_degraded:
            log.info(
                "cluster: node %s on Redis at %s",
                self.node,
                self.shown_url,
                extra={"console": True},
            )

    async def _serve(self, serving: Serving, resync: OnUp) -> None:
        """Run the node's tasks and keep the heartbeat until one ends: Redis went away."""
        tasks = {asyncio.create_task(job) for job in [*serving(), self._keep_alive(resync)]}
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

    async def _heartbeat(self) -> None:
        redis = self.redis
        assert redis is not None
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.alive(self.node), b"1", px=int(HEARTBEAT_TTL * 1000))
            pipe.sadd(self.keys.nodes, self.node)
            await pipe.execute()

    async def _keep_alive(self, resync: OnUp) -> None:
        last_sweep = last_resync = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._heartbeat()
            now = time.monotonic()
            if now - last_sweep >= SWEEP_SECONDS:
                last_sweep = now
                await self._sweep_dead_nodes()
            if now - last_resync >= RESYNC_SECONDS:
                last_resync = now
                assert self.redis is not None
                await resync(self.redis)

    async def _sweep_dead_nodes(self) -> None:
        redis = self.redis
        assert redis is not None
        keys = self.keys
        others = [n for n in await self.nodes() if n != self.node]
        if not others:
            return
        async with redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(keys.alive(other))
            alive = await pipe.execute()
        for other, exists in zip(others, alive, strict=True):
            if not exists:
                gone = await redis.eval(DEAD_NODE_SCRIPT, 0, keys.prefix, other)
                log.warning(
                    "cluster: node %s stopped answering; %d of its users left",
                    other,
                    gone,
                    extra={"console": True},
                )

    async def nodes(self) -> list[str]:
        """Every node that has announced itself, dead or alive."""
        assert self.redis is not None
        return [_text(n) for n in await self.redis.smembers(self.keys.nodes)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
