"""The hub's port to other nodes of a cluster (docs/cluster.md): what leaves for users present
elsewhere, and what arrives from there under the same rules as local packets — packets,
presence, failed logins, and the changes of each group's tempo and state the store records.

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
from ..osc.messages import error_message
from ..osc.validate import validate_packet
from .directory import Directory, MembershipEvent
from .outbox import Mailbox, Outbox
from .register import Registers
from .settings import Settings
from .state import GroupState, StoredChange, apply_stored, tell_state
from .statistics import Counters
from .tempo import Line, SharedTempo, TempoChange, Timeline, adopt_lines, apply_change, tell_tempo

__all__ = ["ClusterPort", "Elsewhere"]

log = logging.getLogger("tcposcrouter.hub")


class Elsewhere(Protocol):
    """Where packets for users on other nodes go. Called on the hot path, in the order the
    packets are routed here; it must only queue them."""

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None: ...

    def private(self, group: str, target: str, message: bytes) -> None: ...

    def state_changed(
        self, group: str, sender: str, address: str, message: bytes | None
    ) -> bool: ...


class ClusterPort:
    def __init__(
        self,
        directory: Directory,
        outbox: Outbox,
        registers: Registers,
        counters: Counters,
        settings: Settings,
    ) -> None:
        self._directory = directory
        self._outbox = outbox
        self._registers = registers
        self._counters = counters
        self._settings = settings
        # Read by the hub's broadcast and by private messages, only for groups with users
        # present elsewhere; and by every change of a group's state.
        self.elsewhere: Elsewhere | None = None
        self.shared_tempo: SharedTempo | None = None  # where tempo changes are made

    def connect(self, elsewhere: Elsewhere | None, tempo: SharedTempo | None = None) -> None:
        """Send what users on other nodes must get through `elsewhere`, and make tempo changes
        through `tempo` (None: nowhere, here)."""
        self.elsewhere = elsewhere
        self.shared_tempo = tempo
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

    def tempo_recorded(self, group_name: str, lines: list[Line], version: int, now: float) -> bool:
        """The store's timeline of `group_name` changed (`lines` on the wall clock, as the
        store keeps them): the copy here adopts it and tells the members here."""
        group = self._directory.groups.get(group_name)
        if group is None:
            return False
        offset = self._settings.wall_clock_offset
        here = [line.on_router_clock(offset) for line in lines]
        return adopt_lines(self._outbox, group, here, version, now)

    def state_recorded(
        self, group_name: str, sender: str, change: StoredChange, here: bool
    ) -> None:
        """The store recorded a change of `group_name`'s state that user `sender` made on this
        node (`here`) or another: delivered to the members here as a member's change is, and
        applied to the copy in the store's order (core/state.py's `apply_stored`)."""
        group = self._directory.groups.get(group_name)
        if group is None or group.timeline is None:  # no copy here: nobody joined here
            return
        receivers: list[Mailbox] = []
        if not here:
            user = group.users.get(sender)
            receivers = user.receivers() if user is not None else group.mailboxes()
        apply_stored(self._outbox, group, change, here, receivers)

    @property
    def wall_clock_offset(self) -> float:
        return self._settings.wall_clock_offset

    def wall_timeline(self, group_name: str, now: float) -> tuple[list[Line], int] | None:
        """The copy here of `group_name`'s timeline: its lines on the wall clock and the store's
        number of its last change; None when there is no copy here."""
        group = self._directory.groups.get(group_name)
        timeline = None if group is None else group.timeline
        if timeline is None:
            return None
        return [line.on_wall_clock() for line in timeline.lines(now)], timeline.version

    def changed_timeline(
        self, lines: list[Line], version: int, change: TempoChange, now: float
    ) -> list[Line]:
        """`change` made on the timeline `lines` (on the wall clock; none: a group's first):
        the new lines, on the wall clock. Raises `bad_tempo` as a member's change here does."""
        offset = self._settings.wall_clock_offset
        if lines:
            timeline = Timeline.of_lines([line.on_router_clock(offset) for line in lines], version)
        else:
            timeline = Timeline(now, offset)
        apply_change(timeline, change, now, offset)
        return [line.on_wall_clock() for line in timeline.lines(now)]

    def refuse(self, mailbox: Mailbox, error: RemoteError) -> None:
        """Tell a member that what it asked was refused after all (not fatal)."""
        self._outbox.send(mailbox, error_message(error.code, error.detail))

    def copies(self, now: float) -> list[tuple[str, list[Line], list[tuple[str, bytes]]]]:
        """Every group's tempo and state this node holds a copy of: name, lines on the wall
        clock, kept messages in the order they were last set."""
        held: list[tuple[str, list[Line], list[tuple[str, bytes]]]] = []
        for group in self._directory.groups.values():
            timeline = group.timeline
            if timeline is None:
                continue
            state = group.state
            messages = [] if state is None else list(state.messages.items())
            held.append(
                (group.name, [line.on_wall_clock() for line in timeline.lines(now)], messages)
            )
        return held

    def adopt_ensemble(
        self, group_name: str, timeline: Timeline, state: GroupState, now: float
    ) -> None:
        """After the store was away: the copy here of `group_name`'s tempo and state becomes
        the store's. Members here are told the timeline if it changed; the state's followers,
        the whole state if it changed (as a joiner is)."""
        group = self._directory.groups.get(group_name)
        old = None if group is None else group.timeline
        if group is None or old is None:
            return
        group.timeline = timeline
        if [line.on_wall_clock() for line in old.lines(now)] != [
            line.on_wall_clock() for line in timeline.lines(now)
        ]:
            tell_tempo(self._outbox, self._settings, group, now, group.mailboxes())
        previous = group.state
        if previous is not None:
            state.followers = previous.followers
        group.state = state
        if previous is None or list(previous.messages.items()) != list(state.messages.items()):
            state.followers.intersection_update(group.mailboxes())
            for box in state.followers:
                tell_state(self._outbox, group, box)

    def remote_joined(self, group_name: str, user_name: str) -> None:
        """`user_name` is in `group_name` on another node: it is in the user list here too
        (told at the end of the turn)."""
        self._directory.add_remote(group_name, user_name)

    def remote_left(self, group_name: str, user_name: str) -> None:
        self._directory.remove_remote(group_name, user_name)
