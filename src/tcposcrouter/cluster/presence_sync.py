"""Presence kept in step with the store: this node's users announced again on every
(re)connection, the other nodes' read again every `RESYNC_SECONDS` and on reconnection, and
their join and leave events applied as they come (docs/cluster.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from ..core.directory import Group
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

    @property
    def apart(self) -> set[str]:
        """The groups kept apart from the cluster's (cluster/presence.py)."""
        return self._presence.apart

    async def announce(self, redis: aioredis.Redis) -> None:
        """(Re)connected: every user connected here is present in the store again, with its
        group's and its own password hash (the store may have lost them, or this node been
        swept while it was away), and what the store still has of this node that is gone
        meanwhile leaves. A group the store now has with another password is kept apart."""
        for group in list(self._hub.directory.groups.values()):
            await self._write_back(redis, group)
        await self.forget_gone_users(redis)
        await redis.sadd(self._keys.written_back, self._node)

    async def rejoin_apart(self, redis: aioredis.Redis) -> None:
        """Try again to join each group kept apart with the cluster's (it joins once the
        cluster's group of that name has emptied); forget those gone here."""
        groups = self._hub.directory.groups
        for name in list(self.apart):
            group = groups.get(name)
            if group is None:
                self.apart.discard(name)
            else:
                await self._write_back(redis, group)

    async def _write_back(self, redis: aioredis.Redis, group: Group) -> None:
        """Claim each user of `group` connected here in the store; at the first refusal (the
        store has the group or a user with another password), leave again those claimed and
        keep the group apart."""
        directory = self._hub.directory
        claimed: list[str] = []
        differs = ""
        for user in list(group.users.values()):
            if not user.sessions or user.password is None or group.password is None:
                continue
            claim = claim_for(directory, group.name, user.name, group.password, user.password)
            answer = await redis.eval(
                JOIN_SCRIPT, 0, *join_arguments(self._keys.prefix, self._node, claim)
            )
            if answer[0] != b"ok":
                differs = f"{answer[0].decode()} password ({user.name})"
                break
            claimed.append(user.name)
        if not differs:
            if group.name in self.apart:
                self.apart.discard(group.name)
                log.warning("cluster: group %s here joins the cluster's again", group.name)
            return
        for name in claimed:
            await redis.eval(LEAVE_SCRIPT, 0, self._keys.prefix, self._node, group.name, name)
        if group.name in self.apart:
            return
        went = self._presence.keep_apart(group.name)
        for group_name, user_name in went:
            self._hub.cluster.remote_left(group_name, user_name)
        self._router.output_ready()
        log.warning(
            "cluster: group %s is here with another %s than the store has: the store lost "
            "it and it was made again elsewhere meanwhile. Its users here play on among "
            "themselves, apart from the cluster's %s, until one of the two empties",
            group.name,
            differs,
            group.name,
            extra={"console": True},
        )

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
