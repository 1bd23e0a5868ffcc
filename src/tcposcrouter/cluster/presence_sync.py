"""Presence kept in step with the store: this node's users announced again on every
(re)connection, the other nodes' read again every `RESYNC_SECONDS` and on reconnection, and
their join and leave events applied as they come (docs/cluster.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from ..server.running import RunningRouter
from .presence import RemotePresence
from .register_round import claim_for, join_arguments
from .store import JOIN_SCRIPT, LEAVE_SCRIPT, Keys
from .wire import SEP, PresenceEvent

__all__ = ["PresenceSync"]

log = logging.getLogger("tcposcrouter.cluster")


class PresenceSync:
    def __init__(
        self,
        router: RunningRouter,
        keys: Keys,
        node: str,
        presence: RemotePresence,
        registers_in_flight: Callable[[], int],
    ) -> None:
        self._router = router
        self._hub = router.hub
        self._keys = keys
        self._node = node
        self._presence = presence
        # Registers between their join in the store and their join here: while there are
        # any, what the store has of this node is not compared with what is here.
        self._registers_in_flight = registers_in_flight
        self.nodes_seen = 0  # other nodes with users, as of the last resync

    async def announce(self, redis: aioredis.Redis) -> None:
        """(Re)connected: every user connected here is present in the store again (the store
        may have been restarted, or this node swept while it was away), and what the store
        still has of this node that is gone meanwhile leaves."""
        directory = self._hub.directory
        for group in directory.groups.values():
            for user in group.users.values():
                if not user.sessions or user.password is None or group.password is None:
                    continue
                claim = claim_for(directory, group.name, user.name, group.password, user.password)
                answer = await redis.eval(
                    JOIN_SCRIPT, 0, *join_arguments(self._keys.prefix, self._node, claim)
                )
                if answer[0] != b"ok":
                    log.warning(
                        "cluster: %s@%s is here with another %s password than the store has "
                        "(created elsewhere while Redis was away); it stays connected",
                        user.name,
                        group.name,
                        answer[0].decode(),
                    )
        await self.forget_gone_users(redis)

    async def forget_gone_users(self, redis: aioredis.Redis) -> None:
        """What the store has of this node but is not connected here (left while Redis was
        away, or a register refused after its join was stored) leaves."""
        local = {
            (group.name, user.name)
            for group in self._hub.directory.groups.values()
            for user in group.users.values()
            if user.sessions
        }
        stored = await redis.smembers(self._keys.node_users(self._node))
        for entry in stored:
            group_name, _, user_name = _text(entry).partition(SEP)
            if (group_name, user_name) not in local and not self._registers_in_flight():
                await redis.eval(
                    LEAVE_SCRIPT, 0, self._keys.prefix, self._node, group_name, user_name
                )

    async def resync(self, redis: aioredis.Redis) -> None:
        """Read where every user of every live node is, and correct the hub's user lists."""
        keys = self._keys
        nodes = [_text(n) for n in await redis.smembers(keys.nodes)]
        others = [n for n in nodes if n != self._node]
        snapshot: list[tuple[str, str, str]] = []
        if others:
            async with redis.pipeline(transaction=False) as pipe:
                for other in others:
                    pipe.exists(keys.alive(other))
                    pipe.smembers(keys.node_users(other))
                answers = await pipe.execute()
            for index, other in enumerate(others):
                if not answers[2 * index]:
                    continue
                for entry in answers[2 * index + 1]:
                    group, _, user = _text(entry).partition(SEP)
                    snapshot.append((other, group, user))
        self.nodes_seen = len({node for node, _, _ in snapshot})
        came, went = self._presence.replace(snapshot)
        cluster = self._hub.cluster
        for group, user in came:
            cluster.remote_joined(group, user)
        for group, user in went:
            cluster.remote_left(group, user)
        if came or went:
            self._router.output_ready()

    async def resync_and_forget(self, redis: aioredis.Redis) -> None:
        await self.resync(redis)
        await self.forget_gone_users(redis)

    def event(self, event: PresenceEvent) -> None:
        """A join or leave published by another node."""
        if event.node == self._node:
            return
        cluster = self._hub.cluster
        if event.kind == "J":
            if self._presence.joined(event.node, event.group, event.user):
                cluster.remote_joined(event.group, event.user)
        elif self._presence.left(event.node, event.group, event.user):
            cluster.remote_left(event.group, event.user)
        self._router.output_ready()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
