"""The group tempo and state shared by the nodes of a cluster through the store (docs/cluster.md,
docs/protocol.md §11, §13).

- A member's tempo change is made in the store, atomically: on the timeline this node's copy
  holds, kept only if nobody changed it meanwhile (else made again on the store's, at most
  `ATTEMPTS` times). It is this node's `SharedTempo`.
- A member's state change is kept and delivered on its node at once, and sent to the store in
  the order of the member's other packets (cluster/traffic.py).
- The store's scripts publish every change on the ensemble channel, numbered; every node (the
  one that made it too) applies them to its copy in that order and tells its members
  (core/elsewhere.py's `tempo_recorded` and `state_recorded`).
- A register for a group this node holds no copy of loads the store's with its join (`loaded`),
  brought up to date with the records that came while it was being loaded.
- Back on the store after it was away, the node writes its copies where the store has none and
  takes the store's (`restore`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..core.outbox import Mailbox
from ..core.state import GroupState, StoredChange
from ..core.tempo import Line, TempoChange, Timeline
from ..errors import ErrorCode, RemoteError
from ..osc.messages import message_address
from ..server.running import RunningRouter
from .link import STORE_TIMEOUT, RedisLink
from .presence import RemotePresence
from .store import RESTORE_SCRIPT, TEMPO_SCRIPT, Keys
from .wire import (
    EnsembleRecord,
    decode_ensemble,
    decode_lines,
    decode_stored_state,
    encode_lines,
)

__all__ = ["ATTEMPTS", "SharedEnsemble", "copy_of"]

log = logging.getLogger("tcposcrouter.cluster")

# Tries of a tempo change on the store's timeline before it is given up: each failed try means
# another node changed the timeline in the same moment. Between tries a node waits a random
# moment, growing, so that two nodes changing one timeline again and again take turns.
ATTEMPTS = 20
_BACKOFF = 0.001


def copy_of(
    snapshot: Sequence[object], wall_offset: float, records: Sequence[EnsembleRecord] = ()
) -> tuple[Timeline, GroupState]:
    """A copy of a group's tempo and state from the store's snapshot (the join and restore
    scripts' reply: "ok", lines, tempo number, state number, state hash), on this router's
    clock, with the `records` of changes published since applied."""
    lines_data, tempo_number, state_number, pairs = snapshot[1:5]
    if not (
        isinstance(lines_data, bytes)
        and isinstance(tempo_number, bytes)
        and isinstance(state_number, bytes)
        and isinstance(pairs, list)
    ):
        raise ValueError("not a snapshot of a group's tempo and state")
    lines = [line.on_router_clock(wall_offset) for line in decode_lines(lines_data)]
    timeline = Timeline.of_lines(lines, int(tempo_number))
    kept = decode_stored_state(pairs)
    state = GroupState.of_messages(
        [(address, message) for _, address, message in kept], int(state_number)
    )
    for record in records:
        if record.kind == "T":
            if record.number > timeline.version:
                later = [line.on_router_clock(wall_offset) for line in decode_lines(record.payload)]
                timeline = Timeline.of_lines(later, record.number)
        elif record.number > state.seq:
            change = stored_change(record)
            state.put(change.address, change.message)
            state.seq = record.number
    return timeline, state


def stored_change(record: EnsembleRecord) -> StoredChange:
    """The state change an "S" or "C" record carries."""
    if record.kind == "S":
        return StoredChange(record.number, message_address(record.payload), record.payload)
    return StoredChange(record.number, record.payload.decode(), None)


def tempo_unavailable() -> RemoteError:
    return RemoteError(
        ErrorCode.STORE_UNAVAILABLE,
        "the tempo change was not made: the router's shared store did not answer; try again",
    )


class SharedEnsemble:
    def __init__(
        self,
        router: RunningRouter,
        link: RedisLink,
        keys: Keys,
        node: str,
        presence: RemotePresence,
    ) -> None:
        self._router = router
        self._port = router.hub.cluster
        self._link = link
        self._keys = keys
        self._node = node
        self._presence = presence
        # Groups whose copy registers are loading: the records that came meanwhile, and how
        # many rounds of registers load it.
        self._loading: dict[str, list[EnsembleRecord]] = {}
        self._loads: dict[str, int] = {}
        # Tempo changes waiting to be made, by group; a task makes each group's in turn.
        self._queued: dict[str, deque[tuple[TempoChange, Mailbox]]] = {}
        self._changes: set[asyncio.Task[None]] = set()

    # -- tempo changes (the hub's SharedTempo) ------------------------------------------

    def change(self, group: str, change: TempoChange, asker: Mailbox) -> bool:
        if self._link.degraded or group in self._presence.apart:
            return False
        queue = self._queued.get(group)
        if queue is None:  # one change of a group at a time, in the order they were asked
            queue = self._queued[group] = deque()
            task = asyncio.get_running_loop().create_task(self._make_changes(group, queue))
            self._changes.add(task)
            task.add_done_callback(self._changes.discard)
        queue.append((change, asker))
        return True

    async def _make_changes(self, group: str, queue: deque[tuple[TempoChange, Mailbox]]) -> None:
        made: tuple[list[Line], int] | None = None  # the last change made here
        try:
            while queue:
                change, asker = queue[0]
                made = await self._change(group, change, asker, made)
                queue.popleft()
        finally:
            self._queued.pop(group, None)

    async def _change(
        self,
        group: str,
        change: TempoChange,
        asker: Mailbox,
        made: tuple[list[Line], int] | None,
    ) -> tuple[list[Line], int] | None:
        """Make `change` in the store; return the lines made and their number (None: not
        made). `made` is this node's last, which its copy may not have adopted yet."""
        port, router = self._port, self._router
        known = port.wall_timeline(group, router.now())
        if made is not None and (known is None or made[1] > known[1]):
            known = made
        lines, number = ([], 0) if known is None else known
        try:
            for attempt in range(ATTEMPTS):
                if attempt:
                    await asyncio.sleep(random.uniform(0, _BACKOFF * attempt))
                try:
                    changed = port.changed_timeline(lines, number, change, router.now())
                except RemoteError as error:  # the store's timeline refuses what ours allowed
                    port.refuse(asker, error)
                    router.output_ready()
                    return None
                reply = await asyncio.wait_for(
                    self._redis().eval(
                        TEMPO_SCRIPT,
                        0,
                        self._keys.prefix,
                        group,
                        self._node,
                        str(number),
                        encode_lines(changed),
                    ),
                    STORE_TIMEOUT,
                )
                if reply[0] == b"ok":
                    return changed, int(reply[1])
                if reply[0] != b"changed":  # the group has gone
                    return None
                number = int(reply[1])
                if reply[2]:
                    lines = decode_lines(reply[2])
            log.warning("cluster: a tempo change of %s given up: the timeline kept changing", group)
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            log.warning("cluster: a tempo change of %s was not made: %r", group, error)
        port.refuse(asker, tempo_unavailable())
        router.output_ready()
        return None

    def _redis(self) -> aioredis.Redis:
        redis = self._link.redis
        if redis is None:
            raise ConnectionError("Redis went away")
        return redis

    # -- the records the store publishes --------------------------------------------------

    def record(self, data: bytes) -> None:
        """One record of the ensemble channel (raises ValueError for one no node published)."""
        record = decode_ensemble(data)
        if record.group in self._presence.apart:
            return  # its group here is not the cluster's (cluster/presence.py)
        loading = self._loading.get(record.group)
        if loading is not None:
            loading.append(record)
        port = self._port
        if record.kind == "T":
            lines = decode_lines(record.payload)
            port.tempo_recorded(record.group, lines, record.number, self._router.now())
        else:
            change = stored_change(record)
            port.state_recorded(record.group, record.sender, change, record.node == self._node)
        self._router.output_ready()

    # -- copies loaded with a register ------------------------------------------------------

    def begin_loading(self, groups: set[str]) -> None:
        for group in groups:
            self._loads[group] = self._loads.get(group, 0) + 1
            self._loading.setdefault(group, [])

    def end_loading(self, groups: set[str]) -> None:
        for group in groups:
            left = self._loads.get(group, 0) - 1
            if left > 0:
                self._loads[group] = left
            else:
                self._loads.pop(group, None)
                self._loading.pop(group, None)

    def loaded(self, group: str, snapshot: Sequence[object]) -> tuple[Timeline, GroupState]:
        """The copy a join's snapshot gives, with the records that came since."""
        return copy_of(snapshot, self._port.wall_clock_offset, self._loading.get(group, ()))

    # -- after the store was away ---------------------------------------------------------

    async def restore(self, redis: aioredis.Redis) -> None:
        """Write this node's copies where the store has none; take the store's."""
        port, router = self._port, self._router
        for group, lines, state in port.copies(router.now()):
            if group in self._presence.apart:
                continue
            arguments: list[str | bytes] = [self._keys.prefix, group, encode_lines(lines)]
            for address, message in state:
                arguments += [address, message]
            snapshot = await redis.eval(RESTORE_SCRIPT, 0, *arguments)
            timeline, copy = copy_of(snapshot, port.wall_clock_offset)
            port.adopt_ensemble(group, timeline, copy, router.now())
        router.output_ready()
