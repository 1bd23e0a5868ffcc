"""Registers carried through the cluster's store: a batch of the hub's password checks is
decided with the hashes the store holds, claimed there, and handed back to its connections
(the decisions are register_round.py's; this does the I/O around them).

Three states change the way:
- Redis away: the node decides alone what it holds the hashes for, and refuses the rest;
- the store being restored after losing its memory (cluster/recovery.py): registers that
  would create a group or a user there wait, refused as `store_unavailable`;
- a group kept apart (cluster/presence.py): its registers are decided here, with this node's
  hashes, and never claimed in the store.

A register for a group this node holds no copy of the tempo and state of loads the store's with
its claim (cluster/ensemble.py); its member starts from it.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..core.auth import PasswordHash
from ..core.register import PasswordCheck
from ..core.session import SessionState
from ..core.tempo import Timeline
from ..server.running import RunChecks, RunningRouter
from .ensemble import SharedEnsemble
from .link import STORE_TIMEOUT, RedisLink
from .presence import RemotePresence
from .recovery import StoreRecovery
from .register_round import (
    RegisterRound,
    StoreKeptChanging,
    join_arguments,
    leave_needed,
    split_when_away,
    store_restoring,
    store_unavailable,
)
from .store import JOIN_SCRIPT, Keys
from .wire import encode_lines
from .writer import Leave, StoreWriter

__all__ = ["StoreRegisters"]

log = logging.getLogger("tcposcrouter.cluster")


class StoreRegisters:
    def __init__(
        self,
        router: RunningRouter,
        link: RedisLink,
        keys: Keys,
        presence: RemotePresence,
        recovery: StoreRecovery,
        writer: StoreWriter,
        ensemble: SharedEnsemble,
    ) -> None:
        self._router = router
        self._ensemble = ensemble
        self._hub = router.hub
        self._link = link
        self._keys = keys
        self._presence = presence
        self._recovery = recovery
        self._writer = writer
        self.in_flight = 0  # batches between their claims in the store and their end here
        self._hash_cache: dict[bytes, PasswordHash] = {}

    async def finish(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        self.in_flight += 1
        try:
            batch = await self._decide_apart(batch, run)
            if not batch:
                return
            if self._link.degraded:
                await self._decide_alone(batch, run)
            else:
                await self._through_store(batch, run)
        finally:
            self.in_flight -= 1

    async def _decide_apart(
        self, batch: list[PasswordCheck], run: RunChecks
    ) -> list[PasswordCheck]:
        """Decide the registers for groups kept apart, here; return the others."""
        apart = self._presence.apart
        if not apart:
            return batch
        groups = self._hub.directory.groups
        apart.intersection_update(groups)  # a group gone here is no longer apart
        here = [c for c in batch if c.request.group in apart and c.group is not None]
        if here:
            await run(here)
            self._hand_back(here)
            batch = [c for c in batch if c not in here]
        return batch

    async def _decide_alone(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        router, hub = self._router, self._hub
        local, refused = split_when_away(batch)
        for check in refused:
            hub.registers.refused(check, store_unavailable(), router.now())
        router.output_ready()
        if local:
            await run(local)
            self._hand_back(local)

    async def _through_store(self, batch: list[PasswordCheck], run: RunChecks) -> None:
        router, hub = self._router, self._hub
        round_ = RegisterRound(batch, self._parse, hub.directory)
        loading: set[str] = set()
        try:
            await asyncio.wait_for(self._learn(round_), STORE_TIMEOUT)
            if await asyncio.wait_for(self._restoring(), STORE_TIMEOUT):
                for check in round_.without_creations():
                    hub.registers.refused(check, store_restoring(), router.now())
                router.output_ready()
            if round_.batch:
                await run(round_.batch)
            while lost := await asyncio.wait_for(self._claim(round_, loading), STORE_TIMEOUT):
                await run(lost)  # another node created the group or user first
            self._copies_loaded(round_)
        except (RedisError, OSError, asyncio.TimeoutError, StoreKeptChanging, ValueError) as error:
            log.warning("cluster: registers refused, the store did not answer: %r", error)
            self._ensemble.end_loading(loading)
            for check in batch:
                if check.session.state is SessionState.REGISTERING:
                    hub.registers.refused(check, store_unavailable(), router.now())
            router.output_ready()
            return
        self._hand_back(round_.batch)
        self._ensemble.end_loading(loading)

    def _copies_loaded(self, round_: RegisterRound) -> None:
        """Give each register the copy of its group's tempo and state its round loaded."""
        copies = {
            group: self._ensemble.loaded(group, snapshot)
            for group, snapshot in round_.snapshots.items()
        }
        for check in round_.batch:
            check.ensemble = copies.get(check.request.group)

    async def _restoring(self) -> bool:
        """Whether the store is still being restored: nodes that had users before it lost
        its memory have not all written theirs back (cluster/recovery.py)."""
        recovery = self._recovery
        if not recovery.waiting_for(self._router.now()):
            return False
        written = await self._redis().smembers(self._keys.written_back)
        recovery.written_back(_text(node) for node in written)
        return bool(recovery.waiting_for(self._router.now()))

    def _hand_back(self, batch: list[PasswordCheck]) -> None:
        directory = self._hub.directory
        for check in batch:
            session = check.session
            if session.state is SessionState.REGISTERING:  # not closed meanwhile
                connection = self._router.connections.of(session.id)
                if connection is not None:
                    connection.password_checked(check)
            if leave_needed(check, directory):
                self._writer.put(Leave(check.request.group, check.request.user))

    def _redis(self) -> aioredis.Redis:
        redis = self._link.redis
        if redis is None:
            raise ConnectionError("Redis went away")
        return redis

    async def _learn(self, round_: RegisterRound) -> None:
        keys = self._keys
        async with self._redis().pipeline(transaction=False) as pipe:
            for group, user in round_.lookups():
                pipe.hget(keys.groups, group)
                pipe.hget(keys.users(group), user)
            round_.learn(await pipe.execute())

    async def _claim(self, round_: RegisterRound, loading: set[str]) -> list[PasswordCheck]:
        """Claim the checks that passed; the groups whose copies they load join `loading`."""
        claims = round_.claims()
        if not claims:
            return round_.claimed([])
        more = round_.groups_loading() - loading
        self._ensemble.begin_loading(more)  # records from now on are kept for the copies
        loading |= more
        now, offset = self._router.now(), self._hub.cluster.wall_clock_offset
        new = encode_lines([line.on_wall_clock() for line in Timeline(now, offset).lines(now)])
        prefix, node = self._keys.prefix, self._link.node
        async with self._redis().pipeline(transaction=False) as pipe:
            for claim, load in zip(claims, round_.loads, strict=True):
                arguments = join_arguments(prefix, node, claim, new if load else None)
                pipe.eval(JOIN_SCRIPT, 0, *arguments)
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
