"""A group's state for late joiners (docs/protocol.md §13): the last message a member set for
each address, in the order they were last set, within the group's bounds; the members who
follow its changes wrapped; and the members' `/oscrouter/state…` requests.

A set is delivered to every other member as the message itself (`address args…`), byte for byte
in its arguments, so that a client knowing nothing of state hears an ordinary message; a
follower hears it wrapped, as `/oscrouter/state ,s… address args…`, and hears clears too. A
member that registers is sent the whole state between `/oscrouter/state/begin ,i count` and
`/oscrouter/state/end`, after its first user list and the tempo, before any live traffic.

The state lives as long as its group: an ordinary group that empties is gone with it; a pinned
group keeps it while empty.

In a cluster (docs/cluster.md) the store holds each group's state and numbers its changes in
the one order every node applies them. A member's change is kept and delivered here at once,
in the order of its other packets, and handed to the `SharedState` the cluster gives; the
store's record of it comes back to every node: the others deliver it to their members, and
every node's copy applies the changes in the store's order (`apply_stored`), so that the
copies agree when two nodes change one address at the same moment.

Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import ErrorCode, RemoteError
from ..osc.messages import message_address
from ..osc.state import (
    STATE,
    STATE_CLEAR,
    STATE_FOLLOW,
    read_state_clear,
    read_state_follow,
    state_begin,
    state_clear_message,
    state_end,
    unwrap_state,
    wrap_state,
)

if TYPE_CHECKING:
    from ..limits import Limits
    from .outbox import Mailbox, Outbox
    from .settings import Settings

__all__ = [
    "Group",
    "GroupState",
    "SharedState",
    "StateMessages",
    "StoredChange",
    "apply_stored",
    "tell_state",
]


@dataclass(frozen=True)
class StoredChange:
    """A change of a group's state as the cluster's store numbered it: `message` kept for
    `address`, or None: the address cleared."""

    seq: int
    address: str
    message: bytes | None


class GroupState:
    """The messages kept for one group, by address, in the order they were last set.

    In a cluster, `seq` is the store's number of the last change this copy applied, `own` counts
    this node's changes of each address whose record has not come back from the store yet, and
    `overtaken` names the addresses another node changed meanwhile."""

    __slots__ = ("followers", "messages", "overtaken", "own", "seq", "size")

    def __init__(self) -> None:
        self.messages: dict[str, bytes] = {}
        self.size = 0  # the messages' bytes in all
        self.followers: set[Mailbox] = set()  # connections that hear changes wrapped
        self.seq = 0
        self.own: dict[str, int] = {}
        self.overtaken: set[str] = set()

    @classmethod
    def of_messages(cls, messages: list[tuple[str, bytes]], seq: int) -> GroupState:
        """A copy holding `messages` (address, message, in the order they were last set)."""
        state = cls()
        for address, message in messages:
            state.put(address, message)
        state.seq = seq
        return state

    def set(self, address: str, message: bytes, limits: Limits) -> None:
        """Keep `message` for `address`, replacing what was kept; raise `state_full` (and keep
        nothing) when that would pass the group's bounds."""
        old = self.messages.get(address)
        size = self.size - (0 if old is None else len(old)) + len(message)
        count = len(self.messages) + (old is None)
        if count > limits.max_state_addresses or size > limits.max_state_bytes:
            raise RemoteError(
                ErrorCode.STATE_FULL,
                f"the group keeps at most {limits.max_state_addresses} addresses and "
                f"{limits.max_state_bytes} bytes of state; {address[:60]} was not kept or sent",
            )
        self.put(address, message)

    def put(self, address: str, message: bytes | None) -> None:
        """Keep `message` for `address` (None: clear it), whatever the bounds: a change the
        store made, checked where it was made."""
        old = self.messages.pop(address, None)  # to the end: the order of last setting
        if old is not None:
            self.size -= len(old)
        if message is not None:
            self.messages[address] = message
            self.size += len(message)

    def clear(self, address: str) -> bool:
        """Forget what was kept for `address`; False if nothing was."""
        had = address in self.messages
        self.put(address, None)
        return had


class Group(Protocol):
    """What the state needs of a group (core/directory.py's `Group`)."""

    name: str
    state: GroupState | None

    def mailboxes(self) -> list[Mailbox]: ...


class SharedState(Protocol):
    """Where a cluster node sends its members' state changes (cluster/traffic.py)."""

    def state_changed(self, group: str, sender: str, address: str, message: bytes | None) -> bool:
        """Record `message` for `address` in the store (None: clear it) and have it delivered
        on the other nodes, after what `sender` sent before it; False when the store is away
        (the change is then this node's alone)."""
        ...


def state_of(group: Group) -> GroupState:
    state = group.state
    if state is None:
        state = group.state = GroupState()
    return state


def tell_state(outbox: Outbox, group: Group, box: Mailbox) -> None:
    """Send `box` the whole state: begin, every message (wrapped for a follower), end."""
    state = state_of(group)
    wrapped = box in state.followers
    outbox.send(box, state_begin(len(state.messages)))
    for message in state.messages.values():
        outbox.send(box, wrap_state(message) if wrapped else message)
    outbox.send(box, state_end())


class StateMessages:
    """A member's `/oscrouter/state`, `/oscrouter/state/clear` and `/oscrouter/state/follow`."""

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        self._settings = settings
        self._outbox = outbox

    def handle(
        self,
        group: Group,
        mailbox: Mailbox,
        receivers: list[Mailbox],
        message: bytes,
        sender: str = "",
        shared: SharedState | None = None,
    ) -> None:
        """Carry out one state request of a member of `group` (its connection's `mailbox`, its
        user's name `sender`; the other members' connections `receivers`); raise `bad_state`
        or `state_full`. In a cluster, `shared` takes each change to the other nodes."""
        address = message_address(message)
        state = state_of(group)
        if address == STATE:
            unwrapped = unwrap_state(message)
            if unwrapped is None:
                tell_state(self._outbox, group, mailbox)
                return
            target, stored = unwrapped
            state.set(target, stored, self._settings.limits)
            _deliver(self._outbox, group, state, receivers, stored, wrap_state(stored))
            _share(state, shared, group, sender, target, stored)
        elif address == STATE_CLEAR:
            target = read_state_clear(message)
            if state.clear(target):  # nothing kept: nothing changed, nobody told
                clear = state_clear_message(target)
                _deliver(self._outbox, group, state, receivers, None, clear)
                _share(state, shared, group, sender, target, None)
        elif address == STATE_FOLLOW:
            if read_state_follow(message):
                state.followers.add(mailbox)
            else:
                state.followers.discard(mailbox)
        else:
            raise RemoteError(ErrorCode.UNKNOWN_COMMAND, f"{address} is reserved for the router")


def _share(
    state: GroupState,
    shared: SharedState | None,
    group: Group,
    sender: str,
    address: str,
    message: bytes | None,
) -> None:
    if shared is not None and shared.state_changed(group.name, sender, address, message):
        state.own[address] = state.own.get(address, 0) + 1


def apply_stored(
    outbox: Outbox, group: Group, change: StoredChange, here: bool, receivers: list[Mailbox]
) -> None:
    """A change of `group`'s state as the store recorded it: made on this node (`here`: its
    members have it already) or on another (delivered to `receivers`, as a member's change
    is). The copy applies it in the store's order: a change the copy has (`seq` not above its
    own) is skipped, and so is an older one of an address this node changed since, whose own
    record, later in the store's order, is still to come; when it comes, the followers here,
    who heard the other node's change last, are told this node's again."""
    state = group.state
    if state is None or change.seq <= state.seq:
        return
    state.seq = change.seq
    address, message = change.address, change.message
    wrapped = wrap_state(message) if message is not None else state_clear_message(address)
    if not here:
        _deliver(outbox, group, state, receivers, message, wrapped)
        if state.own.get(address):
            state.overtaken.add(address)
        else:
            state.put(address, message)
        return
    left = state.own.get(address, 0) - 1
    if left > 0:
        state.own[address] = left
        return  # a later change of this node's is on its way
    state.own.pop(address, None)
    state.put(address, message)
    if address in state.overtaken:
        state.overtaken.discard(address)
        state.followers.intersection_update(group.mailboxes())
        if state.followers:
            outbox.deliver(list(state.followers), wrapped)


def _deliver(
    outbox: Outbox,
    group: Group,
    state: GroupState,
    receivers: list[Mailbox],
    plain: bytes | None,
    wrapped: bytes,
) -> None:
    """`plain` to `receivers` who do not follow the state, `wrapped` to those who do."""
    followers = state.followers
    if followers:
        followers.intersection_update(group.mailboxes())  # those gone are forgotten
    wrapped_to = [box for box in receivers if box in followers]
    plain_to = [box for box in receivers if box not in followers]
    if wrapped_to:
        outbox.deliver(wrapped_to, wrapped)
    if plain is not None and plain_to:
        outbox.deliver(plain_to, plain)
