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

Pure code.
"""

from __future__ import annotations

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

__all__ = ["Group", "GroupState", "StateMessages", "tell_state"]


class GroupState:
    """The messages kept for one group, by address, in the order they were last set."""

    __slots__ = ("followers", "messages", "size")

    def __init__(self) -> None:
        self.messages: dict[str, bytes] = {}
        self.size = 0  # the messages' bytes in all
        self.followers: set[Mailbox] = set()  # connections that hear changes wrapped

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
        if old is not None:
            del self.messages[address]  # to the end: the order is the order of last setting
        self.messages[address] = message
        self.size = size

    def clear(self, address: str) -> bool:
        """Forget what was kept for `address`; False if nothing was."""
        old = self.messages.pop(address, None)
        if old is not None:
            self.size -= len(old)
        return old is not None


class Group(Protocol):
    """What the state needs of a group (core/directory.py's `Group`)."""

    state: GroupState | None

    def mailboxes(self) -> list[Mailbox]: ...


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
        self, group: Group, mailbox: Mailbox, receivers: list[Mailbox], message: bytes
    ) -> None:
        """Carry out one state request of a member of `group` (its connection's `mailbox`; the
        other members' connections `receivers`); raise `bad_state` or `state_full`."""
        address = message_address(message)
        state = state_of(group)
        if address == STATE:
            unwrapped = unwrap_state(message)
            if unwrapped is None:
                tell_state(self._outbox, group, mailbox)
                return
            target, stored = unwrapped
            state.set(target, stored, self._settings.limits)
            self._deliver(group, state, receivers, stored, wrap_state(stored))
        elif address == STATE_CLEAR:
            target = read_state_clear(message)
            if state.clear(target):  # nothing kept: nothing changed, nobody told
                self._deliver(group, state, receivers, None, state_clear_message(target))
        elif address == STATE_FOLLOW:
            if read_state_follow(message):
                state.followers.add(mailbox)
            else:
                state.followers.discard(mailbox)
        else:
            raise RemoteError(ErrorCode.UNKNOWN_COMMAND, f"{address} is reserved for the router")

    def _deliver(
        self,
        group: Group,
        state: GroupState,
        receivers: list[Mailbox],
        plain: bytes | None,
        wrapped: bytes,
    ) -> None:
        followers = state.followers
        if followers:
            followers.intersection_update(group.mailboxes())  # those gone are forgotten
        wrapped_to = [box for box in receivers if box in followers]
        plain_to = [box for box in receivers if box not in followers]
        if wrapped_to:
            self._outbox.deliver(wrapped_to, wrapped)
        if plain is not None and plain_to:
            self._outbox.deliver(plain_to, plain)
