"""The hub's port to other nodes of a cluster (docs/cluster.md): what leaves for users present
elsewhere, and what arrives from there under the same rules as local packets.

The cluster's edge (cluster/node.py) implements `Elsewhere` and calls the `ClusterPort` the hub
holds as `Hub.cluster`. A router that is no node of a cluster never sets an `Elsewhere`, and
nothing here runs.

Pure code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..errors import ErrorCode, RemoteError
from ..osc.validate import validate_packet
from .directory import Directory, MembershipEvent
from .outbox import Outbox
from .register import Registers
from .statistics import Counters

__all__ = ["ClusterPort", "Elsewhere"]

log = logging.getLogger("tcposcrouter.hub")


class Elsewhere(Protocol):
    """Where packets for users on other nodes go. Called on the hot path, in the order the
    packets are routed here; it must only queue them."""

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None: ...

    def private(self, group: str, target: str, message: bytes) -> None: ...


class ClusterPort:
    def __init__(
        self, directory: Directory, outbox: Outbox, registers: Registers, counters: Counters
    ) -> None:
        self._directory = directory
        self._outbox = outbox
        self._registers = registers
        self._counters = counters
        # Read by the hub's broadcast and by private messages, only for groups with users
        # present elsewhere.
        self.elsewhere: Elsewhere | None = None

    def connect(self, elsewhere: Elsewhere | None) -> None:
        """Send what users on other nodes must get through `elsewhere` (None: nowhere)."""
        self.elsewhere = elsewhere
        # Through the store, every register makes its own hashes, with scrypt
        # (Registers.hashes_shared).
        self._registers.hashes_shared = elsewhere is not None

    def subscribe(self, listener: Callable[[MembershipEvent], None]) -> None:
        """Call `listener` with every join and leave of a user here."""
        self._directory.subscribe(listener)

    def subscribe_login_failures(self, listener: Callable[[str, str, str], None]) -> None:
        """Call `listener(address, group, user)` for every failed password check here."""
        self._registers.failure_listeners.append(listener)

    def login_failed_elsewhere(self, address: str, group: str, user: str, now: float) -> None:
        """Another node saw a failed login from `address` at `user` in `group`: the throttle
        here counts it as its own, so that guessing across nodes is slowed as on one."""
        self._registers.throttle.record_failure(address, (group, user), now)

    def deliver(self, group_name: str, sender: str, packet: bytes) -> int:
        """Deliver `packet`, sent by user `sender` of `group_name` on another node, to the
        group's connections here: every user but `sender`, in the order of the calls (so one
        sender's packets keep their order). Return how many connections it went to."""
        group = self._directory.groups.get(group_name)
        if group is None:
            return 0
        counters = self._counters
        counters.packets_from_elsewhere += 1
        try:
            if validate_packet(packet):  # checked where it arrived; a broken edge must not
                raise RemoteError(ErrorCode.UNKNOWN_COMMAND, "router message from elsewhere")
        except RemoteError as error:
            counters.count(counters.drops, error.code)
            log.warning("dropped a packet from elsewhere for %s: %s", group_name, error)
            return 0
        user = group.users.get(sender)
        receivers = user.receivers() if user is not None else group.mailboxes()
        self._outbox.deliver(receivers, packet)
        return len(receivers)

    def deliver_private(self, group_name: str, target: str, message: bytes) -> int:
        """Deliver a private message (already rewritten to name its sender, see
        `PrivateRequest.as_sent_by`) from another node to `target`'s connections here."""
        group = self._directory.groups.get(group_name)
        user = None if group is None else group.users.get(target)
        if user is None or not user.sessions:
            return 0
        counters = self._counters
        counters.packets_from_elsewhere += 1
        try:
            validate_packet(message)
        except RemoteError as error:
            counters.count(counters.drops, error.code)
            log.warning("dropped a private message from elsewhere for %s: %s", group_name, error)
            return 0
        boxes = user.mailboxes()
        self._outbox.deliver(boxes, message)
        return len(boxes)

    def remote_joined(self, group_name: str, user_name: str) -> None:
        """`user_name` is in `group_name` on another node: it is in the user list here too
        (told at the end of the turn)."""
        self._directory.add_remote(group_name, user_name)

    def remote_left(self, group_name: str, user_name: str) -> None:
        self._directory.remove_remote(group_name, user_name)
