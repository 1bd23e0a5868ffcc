"""`--workers`: a connection moved to the worker that owns its group, all of it in one place.

A worker reads a new connection until its first packet is whole (`FirstPacket`). If that
packet registers for a group another worker owns, the shell calls `move_to_owner` once, with
a way to move it (`Mover`): a plain TCP connection is handed over, socket and bytes read
(server/handoff.py, `stream_mover`); a TLS one, or a WebSocket whose handshake was answered
here, is relayed (server/relay.py). An owner that cannot take it now is restarting (a second,
doubling while it keeps dying) or swamped: the connection waits, not read, and is offered
again every `HANDOFF_RETRY_SECONDS` for 10 s, then closed so that its client reconnects rather
than play alone in half a group; in a cluster it stays here instead, and the cluster carries
its packets. Whatever happens, the shell is told once (`settled`) and goes on moving bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .connection import HubConnection
from .handoff import MAX_HANDED_BYTES, OSC, register_group
from .relay import Relayed, StreamRelay, open_link
from .running import RunningRouter

__all__ = ["HANDOFF_RETRY_SECONDS", "HANDOFF_TRIES", "FirstPacket", "Mover", "move_to_owner",
           "stream_mover"]  # fmt: skip

log = logging.getLogger("tcposcrouter.server")

# An owner that cannot take a connection is restarting (a second, doubling while it keeps
# dying) or swamped: without a cluster to carry the packets meanwhile, the connection waits,
# not read, and is offered again this often, this many times (10 s), then closed, so that its
# client reconnects rather than play alone in half a group.
HANDOFF_RETRY_SECONDS, HANDOFF_TRIES = 0.25, 40

# Moves the connection to worker `owner` now and says how ("handed", "relayed"), or None if
# that worker cannot take it now.
Mover = Callable[[int], str | None]


class FirstPacket:
    """What a connection sent before its first packet was whole, to be moved with it."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = b""

    def add(self, data: bytes) -> tuple[bytes, str | None, bool] | None:
        """None while the first packet is not whole yet; then everything read, the group that
        packet registers for (None: not a register, or past `MAX_HANDED_BYTES`), and whether
        it was all `/oscrouter/info` requests, which this worker answers before it looks at
        the next packet (server/handoff.py `register_group`)."""
        held = self._held + data
        whole, group, asking = register_group(held)
        if not whole and len(held) < MAX_HANDED_BYTES:
            self._held = held
            return None
        self._held = b""
        return held, group, asking


def move_to_owner(
    router: RunningRouter,
    connection: HubConnection,
    group: str,
    move: Mover,
    still_here: Callable[[], bool],
    settled: Callable[[], None] | None = None,
) -> bool:
    """Move `connection`, whose first packet registers for `group`, to the worker that owns
    the group. False: it stays here and is read as usual (this worker owns the group; or, in a
    cluster, the owner cannot take it now). True: it is this module's now, moved at once or
    offered again until it moves, is closed, or `still_here()` says it went meanwhile;
    `settled` is called once when one of those has happened."""
    handoff = router.handoff
    assert handoff is not None
    owner = handoff.elsewhere(group)
    if owner is None:
        return False
    if _offer(connection, group, owner, move):
        if settled is not None:
            settled()
        return True
    if router.cluster is not None:
        return False  # the cluster carries its packets
    loop = asyncio.get_running_loop()

    def again(tries: int) -> None:
        if not still_here():  # gone while it waited
            if settled is not None:
                settled()
            return
        if not _offer(connection, group, owner, move):
            if tries < HANDOFF_TRIES:
                loop.call_later(HANDOFF_RETRY_SECONDS, again, tries + 1)
                return
            session = connection.session
            who = session.describe() if session is not None else "a connection"
            log.warning("%s closed: worker %d could not take it", who, owner)
            connection.reset()
        if settled is not None:
            settled()

    loop.call_later(HANDOFF_RETRY_SECONDS, again, 1)
    return True


def _offer(connection: HubConnection, group: str, owner: int, move: Mover) -> bool:
    how = move(owner)
    if how is None:
        return False
    connection.moved_to(owner, group, how)
    return True


def stream_mover(
    router: RunningRouter, transport: asyncio.Transport, relayed_as: Relayed, held: bytes
) -> Mover:
    """A TCP connection's way to its owner: handed over, socket and `held` bytes, or relayed if
    its TLS session must stay here (`relayed_as` says who it is, for the owner's log)."""
    handoff = router.handoff
    assert handoff is not None

    def move(owner: int) -> str | None:
        if transport.get_extra_info("sslcontext") is None:
            return "handed" if handoff.pass_on(transport, owner, OSC, held) else None
        relay = StreamRelay(transport, router.config.limits.max_output_buffer)
        relay.link = open_link(handoff, owner, relayed_as, held, relay)
        if relay.link is None:
            return None
        transport.set_protocol(relay)
        transport.resume_reading()
        return "relayed"

    return move
