"""The store writer: leaves and failed logins, written to Redis in the order they came,
everything one turn of the loop queued in one pipeline (packets go through the publisher)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from .link import RedisLink
from .store import LEAVE_SCRIPT, Keys
from .wire import LoginFailure, encode_failure

__all__ = ["Leave", "StoreWriter"]

log = logging.getLogger("tcposcrouter.cluster")


@dataclass(frozen=True)
class Leave:
    """`user` of `group` has no connection on this node any more."""

    group: str
    user: str


StoreItem = Leave | LoginFailure


class StoreWriter:
    def __init__(self, link: RedisLink, keys: Keys, node: str) -> None:
        self._link = link
        self._keys = keys
        self._node = node
        self._queue: list[StoreItem] = []
        self._wakeup = asyncio.Event()

    def put(self, item: StoreItem) -> None:
        self._queue.append(item)
        if len(self._queue) == 1:
            self._wakeup.set()

    async def run(self) -> None:
        """Write what is queued, for as long as the node runs. What the store misses while
        Redis is away is mended on reconnection (announce and resync), so it is dropped."""
        keys, node = self._keys, self._node
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            redis = self._link.redis
            if not batch or redis is None or self._link.degraded:
                continue
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for item in batch:
                        if isinstance(item, LoginFailure):
                            pipe.publish(keys.logins_channel, encode_failure(item))
                        else:
                            pipe.eval(LEAVE_SCRIPT, 0, keys.prefix, node, item.group, item.user)
                    await pipe.execute()
            except (RedisError, OSError) as error:
                log.debug("cluster: writing to the store failed: %s", error)
