"""The group directory: groups, their users, each user's connections, and who receives what
(docs/protocol.md §3).

A *user* is a name with a password inside a group, holding one or more sessions (connections);
a *group* is a name with a password holding users in the order they joined. Users and groups
exist exactly as long as they have a connection here, or are known to be present on another
node (`add_remote`): then the user has no connection here and no password (it is checked where
the user connected). Pinned groups (core/pinned.py) exist from the moment the rules name them,
empty or not.

Every join and leave of a user is published as a `MembershipEvent` to the listeners an edge
subscribed: in a cluster, the node announces them to the other nodes (cluster/node.py).

User lists are sent once per turn of the event loop (docs/protocol.md §7, "User lists"): a
change marks its group (`changed`), and the hub's flush tells every connection of each marked
group the list, once, however many joins and leaves the turn brought (a thousand clients
registering at once would otherwise cost every member of a group one write per newcomer). A
joiner gets the list at once, right after its register reply, as the SuperCollider client needs
(`tell_user_list`); each mailbox remembers which version of its group's list it has, so nobody
gets the same list twice.

Pure code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..osc.framing import Framing
from ..osc.messages import osc_string, user_list_of
from .auth import PasswordHash
from .outbox import Mailbox, Outbox
from .pinned import GroupRules, PinnedGroup

if TYPE_CHECKING:
    from .state import GroupState
    from .tempo import Timeline

__all__ = [
    "Directory",
    "Group",
    "Member",
    "MembershipEvent",
    "User",
    "announce_changes",
    "tell_user_list",
]


class Member(Protocol):
    """A user's connection as the directory and its readers see it: `session.Session`, which
    sits above this module (a session knows its user; a user its sessions)."""

    user: User | None

    @property
    def id(self) -> int: ...

    @property
    def peer(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def last_seen(self) -> float: ...

    @property
    def mailbox(self) -> Mailbox: ...

    @property
    def accepts_input(self) -> bool: ...

    @property
    def framing(self) -> Framing | None: ...


@dataclass(frozen=True)
class MembershipEvent:
    """`user` joined or left `group` here. `connections`: its connections here afterwards."""

    kind: str  # "joined" or "left"
    group: str
    user: str
    connections: int


class User:
    __slots__ = (
        "_receivers",
        "bytes_sent",
        "group",
        "name",
        "osc_name",
        "packets_sent",
        "password",
        "remote",
        "sessions",
    )

    def __init__(self, name: str, password: PasswordHash | None, group: Group) -> None:
        self.name = name
        self.osc_name = osc_string(name)  # as every user list of its group carries it
        self.password = password
        self.group = group
        self.sessions: list[Member] = []
        self.remote = False  # present on another node
        # What its connections here sent while registered, for the dashboard's rates.
        self.packets_sent = 0
        self.bytes_sent = 0
        # The mailboxes of every connection of every other user of the group, built on first
        # use after a change: the broadcast's list of receivers.
        self._receivers: list[Mailbox] | None = None

    def receivers(self) -> list[Mailbox]:
        receivers = self._receivers
        if receivers is None:
            receivers = [
                session.mailbox
                for other in self.group.users.values()
                if other is not self
                for session in other.sessions
            ]
            self._receivers = receivers
        return receivers

    def mailboxes(self) -> list[Mailbox]:
        return [session.mailbox for session in self.sessions]

    def forget_receivers(self) -> None:
        self._receivers = None


class Group:
    __slots__ = (
        "list_version",
        "name",
        "password",
        "pinned",
        "remote_users",
        "state",
        "timeline",
        "users",
    )

    def __init__(self, name: str, password: PasswordHash | None) -> None:
        self.name = name
        self.password = password  # None: the group is only known from another node
        self.users: dict[str, User] = {}  # in the order they joined (dicts keep it)
        self.pinned: PinnedGroup | None = None  # defined by the operator: kept when empty
        # Users present on another node: while there are any, what is sent here goes there too.
        self.remote_users = 0
        self.list_version = 0  # counts the changes of its user list
        self.timeline: Timeline | None = None  # its tempo, from its first member (core/tempo.py)
        self.state: GroupState | None = None  # for late joiners, from its first set (state.py)

    def mailboxes(self) -> list[Mailbox]:
        return [session.mailbox for user in self.users.values() for session in user.sessions]

    def membership_changed(self) -> None:
        self.list_version += 1
        for user in self.users.values():
            user.forget_receivers()


class Directory:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.rules = GroupRules()
        self._listeners: list[Callable[[MembershipEvent], None]] = []
        # Groups whose user list changed since the last flush, in the order they changed.
        self.changed: dict[Group, None] = {}

    def apply_rules(self, rules: GroupRules) -> None:
        """Pin the groups `rules` names and unpin the others; nobody connected is affected.

        A pinned group that exists already (created by a client, or pinned before) takes the
        pinned password: its members stay, and whoever joins next needs the new one. So do
        its connected users whose names are pinned. A group no longer pinned becomes an
        ordinary one, and goes if it is empty.
        """
        pinned = {group.name: group for group in rules.pinned}
        for existing in list(self.groups.values()):
            if existing.pinned is not None and existing.name not in pinned:
                existing.pinned = None
                if not existing.users:
                    del self.groups[existing.name]
        for name, spec in pinned.items():
            group = self.groups.get(name)
            if group is None:
                group = self.groups[name] = Group(name, spec.password)
            group.pinned = spec
            group.password = spec.password
            for user in group.users.values():
                hashed = spec.users.get(user.name)
                if hashed is not None and user.password is not None:
                    user.password = hashed
        self.rules = rules

    def subscribe(self, listener: Callable[[MembershipEvent], None]) -> None:
        self._listeners.append(listener)

    def _publish(self, kind: str, user: User) -> None:
        if self._listeners:
            event = MembershipEvent(kind, user.group.name, user.name, len(user.sessions))
            for listener in self._listeners:
                listener(event)

    def join(
        self,
        session: Member,
        group_name: str,
        user_name: str,
        group_password: PasswordHash | None = None,
        user_password: PasswordHash | None = None,
    ) -> User:
        """Add `session` to the group as `user_name`, creating what does not exist yet with the
        hashes given (the caller has checked the passwords, see `register.Registers`)."""
        group = self.groups.get(group_name)
        if group is None:
            assert group_password is not None, "a new group needs its password"
            group = self.groups[group_name] = Group(group_name, group_password)
        elif group.password is None:  # known only from another node until now
            assert group_password is not None, "a group new here needs its password"
            group.password = group_password
        user = group.users.get(user_name)
        if user is None:
            assert user_password is not None, "a new user needs its password"
            user = group.users[user_name] = User(user_name, user_password, group)
        elif user.password is None:  # known only from another node until now
            assert user_password is not None, "a user new here needs its password"
            user.password = user_password
        user.sessions.append(session)
        session.user = user
        group.membership_changed()
        self.changed[group] = None
        self._publish("joined", user)
        return user

    def leave(self, session: Member) -> Group | None:
        """Take `session` out of its group; return the group if it still has users."""
        user = session.user
        if user is None or session not in user.sessions:
            return None
        group = user.group
        user.sessions.remove(session)
        if not user.sessions and not user.remote:
            del group.users[user.name]
        group.membership_changed()
        self.changed[group] = None
        self._publish("left", user)
        if not group.users:
            if group.pinned is None:
                del self.groups[group.name]
            return None
        return group

    def add_remote(self, group_name: str, user_name: str) -> Group | None:
        """`user_name` is present in `group_name` on another node; return the group if its user
        list changed."""
        group = self.groups.get(group_name)
        if group is None:
            group = self.groups[group_name] = Group(group_name, None)
        user = group.users.get(user_name)
        if user is None:
            user = group.users[user_name] = User(user_name, None, group)
            user.remote = True
            group.remote_users += 1
            group.membership_changed()
            self.changed[group] = None
            return group
        if not user.remote:
            user.remote = True
            group.remote_users += 1
        return None

    def remove_remote(self, group_name: str, user_name: str) -> Group | None:
        """`user_name` is no longer present on any other node; return the group if its user
        list changed (and it still exists)."""
        group = self.groups.get(group_name)
        user = None if group is None else group.users.get(user_name)
        if group is None or user is None or not user.remote:
            return None
        user.remote = False
        group.remote_users -= 1
        if user.sessions:
            return None  # still connected here
        del group.users[user_name]
        group.membership_changed()
        self.changed[group] = None
        if not group.users:
            if group.pinned is None:
                del self.groups[group_name]
            return None
        return group

    def users(self) -> int:
        return sum(len(group.users) for group in self.groups.values())


def tell_user_list(outbox: Outbox, group: Group, boxes: list[Mailbox]) -> None:
    """Queue the group's user list for those of `boxes` that do not have its latest version."""
    version = group.list_version
    behind = [box for box in boxes if box.list_version != version]
    if not behind:
        return
    for box in behind:
        box.list_version = version
    names = [user.osc_name for user in group.users.values()]
    outbox.deliver(behind, user_list_of(names))


def announce_changes(outbox: Outbox, directory: Directory) -> None:
    """Tell every connection of each group whose user list changed the list, once."""
    changed, directory.changed = directory.changed, {}
    for group in changed:
        tell_user_list(outbox, group, group.mailboxes())
