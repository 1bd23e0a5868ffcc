"""A batch of registers carried through the cluster's store: the decisions, without Redis.

The node (cluster/node.py) does the I/O around it:

1. Redis away: `split_when_away` says which registers this node can decide alone (it holds
   the hashes of their group and user) and which are refused as `store_unavailable`.
2. `lookups` names the group and user hashes to read (HGET); `learn` takes the replies, so
   that each check runs against the store's hashes where this node has none. While the store
   is being restored after losing its memory, `without_creations` takes out the registers
   that would create a group or user there, to be refused for now (cluster/recovery.py).
3. The checks run (scrypt, worker threads).
4. `claims` are the join scripts to run for the checks that passed; `claimed` takes their
   replies: "ok" won (the group and user are created, or were there with these hashes), a
   reply naming "group" or "user" lost a creation race to another node, whose hash it learns:
   those checks run again (3) and are claimed again, at most `ATTEMPTS` times. The first claim
   of a group this node holds no copy of the tempo and state of also loads them (`snapshots`).
5. Each check goes back to its connection; `leave_needed` says when the store counted a user
   present here whom the hub then did not register.

Pure code: replies are bytes, as Redis gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.auth import PasswordHash
from ..core.directory import Directory
from ..core.register import PasswordCheck
from ..core.session import SessionState
from ..errors import ErrorCode, RemoteError

__all__ = [
    "ATTEMPTS",
    "Claim",
    "RegisterRound",
    "StoreKeptChanging",
    "claim_for",
    "join_arguments",
    "leave_needed",
    "split_when_away",
    "store_restoring",
    "store_unavailable",
]

# Claims per register before it is refused: each lost claim means another node created the
# group or user in the meantime, which a third time in a row no real race does.
ATTEMPTS = 3

ParseHash = Callable[[bytes | None], PasswordHash | None]


class StoreKeptChanging(Exception):
    """The registers' group kept changing in the store: refuse them as `store_unavailable`."""


@dataclass(frozen=True)
class Claim:
    """One join script to run: create the group and the user with these hashes unless they
    exist, and count the user present on this node (cluster/store.py's JOIN_SCRIPT)."""

    group: str
    user: str
    group_hash: PasswordHash
    user_hash: PasswordHash
    pinned_group: bool  # its hash is the configuration's: the store keeps none
    pinned_user: bool


def store_unavailable() -> RemoteError:
    return RemoteError(
        ErrorCode.STORE_UNAVAILABLE,
        "the router's shared store is unavailable for a moment; try again in a few seconds",
        fatal=True,
    )


def store_restoring() -> RemoteError:
    return RemoteError(
        ErrorCode.STORE_UNAVAILABLE,
        "the router's shared store is being restored after a restart; try again in a few seconds",
        fatal=True,
    )


def needs_store(check: PasswordCheck) -> bool:
    """Whether a register cannot be decided without the store: it would create a group or a
    user, or checks against a hash only the store has."""
    return check.group_hash is None or (check.user_hash is None and check.pinned_user_hash is None)


def split_when_away(
    batch: Sequence[PasswordCheck],
) -> tuple[list[PasswordCheck], list[PasswordCheck]]:
    """Redis is away: (the checks this node decides alone, those to refuse)."""
    local = [check for check in batch if not needs_store(check)]
    refused = [check for check in batch if needs_store(check)]
    return local, refused


def leave_needed(check: PasswordCheck, directory: Directory) -> bool:
    """After the hub had `check` back: whether the store counts its user present here though
    it is not (the register was refused, or its connection closed while it was checked)."""
    session = check.session
    if session.state is SessionState.REGISTERED or session.state is SessionState.REGISTERING:
        return False  # joined, or checked again against a changed group: not over yet
    if not (check.group_ok and check.user_ok):
        return False  # never claimed in the store
    request = check.request
    group = directory.groups.get(request.group)
    user = None if group is None else group.users.get(request.user)
    return user is None or not user.sessions


class RegisterRound:
    def __init__(self, batch: list[PasswordCheck], parse: ParseHash, directory: Directory) -> None:
        self.batch = batch
        self._parse = parse
        self._directory = directory
        self.pending: list[PasswordCheck] = []  # to claim next
        self._claimed: list[PasswordCheck] = []  # what `claims` returned, in order
        self._attempts = 0
        self.loads: list[bool] = []  # for each claim `claims` returned: it loads its group's
        # The last join reply that loaded each group's tempo and state, as Redis gave it.
        self.snapshots: dict[str, Sequence[object]] = {}

    def lookups(self) -> list[tuple[str, str]]:
        """(group, user) of each register, whose stored hashes `learn` takes in this order."""
        return [(check.request.group, check.request.user) for check in self.batch]

    def learn(self, replies: Sequence[bytes | None]) -> None:
        """The stored hashes: two replies per register (its group's, its user's; None: the
        store has none)."""
        for index, check in enumerate(self.batch):
            check.learn(self._parse(replies[2 * index]), self._parse(replies[2 * index + 1]))
        self.pending = list(self.batch)

    def without_creations(self) -> list[PasswordCheck]:
        """Take out (and return) the registers that would create a group or a user in the
        store: after `learn`."""
        creating = [check for check in self.batch if check.creates_group or check.creates_user]
        if creating:
            self.batch = [check for check in self.batch if check not in creating]
            self.pending = list(self.batch)
        return creating

    def claims(self) -> list[Claim]:
        """The join scripts for the pending checks that passed (after they ran)."""
        self._attempts += 1
        if self._attempts > ATTEMPTS:
            raise StoreKeptChanging("the group kept changing in the store")
        self._claimed = [check for check in self.pending if check.group_ok and check.user_ok]
        groups = self._directory.groups
        self.loads = []
        loading: set[str] = set()
        for check in self._claimed:
            name = check.request.group
            known = groups.get(name)
            self.loads.append(name not in loading and (known is None or known.timeline is None))
            loading.add(name)
        return [self._claim(check) for check in self._claimed]

    def groups_loading(self) -> set[str]:
        """The groups whose tempo and state the claims `claims` returned load."""
        return {
            check.request.group
            for check, load in zip(self._claimed, self.loads, strict=True)
            if load
        }

    def claimed(self, replies: Sequence[Sequence[object]]) -> list[PasswordCheck]:
        """The join scripts' replies, one per claim: return the checks that lost a creation
        race, having learnt the winner's hash; they run again, then `claims` again."""
        lost: list[PasswordCheck] = []
        for check, load, reply in zip(self._claimed, self.loads, replies, strict=True):
            if reply[0] == b"ok" and load:
                self.snapshots[check.request.group] = reply
            elif reply[0] == b"group":
                check.learn(self._parse(_hash_in(reply)), check.elsewhere_user_hash)
                lost.append(check)
            elif reply[0] == b"user":
                check.learn(check.elsewhere_group_hash, self._parse(_hash_in(reply)))
                lost.append(check)
        self.pending = lost
        return lost

    def _claim(self, check: PasswordCheck) -> Claim:
        request = check.request
        group_hash = check.group_hash or check.new_group_hash
        user_hash = check.user_hash or check.pinned_user_hash or check.new_user_hash
        assert group_hash is not None and user_hash is not None
        return claim_for(self._directory, request.group, request.user, group_hash, user_hash)


def _hash_in(reply: Sequence[object]) -> bytes:
    """The hash a join script answers with when another node created the group or user."""
    stored = reply[1]
    if not isinstance(stored, bytes):
        raise ValueError("a join script's reply without a hash")
    return stored


def claim_for(
    directory: Directory,
    group: str,
    user: str,
    group_hash: PasswordHash,
    user_hash: PasswordHash,
) -> Claim:
    """The claim of `user` in `group` with these hashes. The hashes of a pinned group and of
    its pinned users are the configuration's, so the store is told not to keep them."""
    known = directory.groups.get(group)
    spec = None if known is None else known.pinned
    return Claim(
        group,
        user,
        group_hash,
        user_hash,
        pinned_group=spec is not None,
        pinned_user=spec is not None and user in spec.users,
    )


def join_arguments(
    prefix: str, node: str, claim: Claim, new_timeline: bytes | None = None
) -> list[str | bytes]:
    """The join script's arguments (cluster/store.py) for `claim` on `node`; with
    `new_timeline` (its lines, the one a group made now starts with), it also loads the group's
    tempo and state."""
    return [
        prefix,
        node,
        claim.group,
        claim.user,
        claim.group_hash.encode(),
        claim.user_hash.encode(),
        "1" if claim.pinned_group else "0",
        "1" if claim.pinned_user else "0",
        "0" if new_timeline is None else "1",
        new_timeline or b"",
    ]
