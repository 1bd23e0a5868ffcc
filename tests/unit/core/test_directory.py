"""The directory: groups, users, receivers, remote presence and membership events."""

from __future__ import annotations

from support.net import RecordingSink
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import Directory, MembershipEvent
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import Session

_outbox = Outbox()


def connect(number: int) -> Session:
    mailbox = _outbox.mailbox(RecordingSink(), None, number)
    return Session.open(number, f"peer{number}", "192.0.2.1", 0.0, mailbox, 1024)


def test_receivers_are_every_connection_of_every_other_user() -> None:
    directory = Directory()
    ana, ana2, bob, carl = (connect(i) for i in range(4))
    directory.join(ana, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    directory.join(ana2, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    directory.join(bob, "band", "bob", PasswordHash("g"), PasswordHash("p"))
    directory.join(carl, "other", "carl", PasswordHash("g"), PasswordHash("p"))
    assert ana.user is ana2.user
    assert ana.user is not None and bob.user is not None
    assert ana.user.receivers() == [bob.mailbox]
    assert bob.user.receivers() == [ana.mailbox, ana2.mailbox]
    assert list(directory.groups["band"].users) == ["ana", "bob"]
    directory.leave(ana2)
    assert bob.user.receivers() == [ana.mailbox]  # the cached list follows every change


def test_users_and_groups_go_with_their_last_connection() -> None:
    directory = Directory()
    ana, bob = connect(1), connect(2)
    directory.join(ana, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    directory.join(bob, "band", "bob", PasswordHash("g"), PasswordHash("p"))
    group = directory.leave(ana)
    assert group is not None and list(group.users) == ["bob"]
    assert directory.leave(bob) is None and directory.groups == {}
    assert directory.leave(bob) is None  # twice is harmless


def test_membership_events_for_every_join_and_leave() -> None:
    directory = Directory()
    events: list[MembershipEvent] = []
    directory.subscribe(events.append)
    ana, ana2 = connect(1), connect(2)
    directory.join(ana, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    directory.join(ana2, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    directory.leave(ana)
    directory.leave(ana2)
    assert events == [
        MembershipEvent("joined", "band", "ana", 1),
        MembershipEvent("joined", "band", "ana", 2),
        MembershipEvent("left", "band", "ana", 1),
        MembershipEvent("left", "band", "ana", 0),
    ]


def test_remote_users_are_listed_and_receive_nothing_here() -> None:
    directory = Directory()
    ana = connect(1)
    directory.join(ana, "band", "ana", PasswordHash("g"), PasswordHash("p"))
    changed = directory.add_remote("band", "zoe")
    assert changed is not None and list(changed.users) == ["ana", "zoe"]
    assert directory.add_remote("band", "zoe") is None  # already known: no change
    assert ana.user is not None and ana.user.receivers() == []
    assert directory.remove_remote("band", "zoe") is not None
    assert list(directory.groups["band"].users) == ["ana"]
    assert directory.remove_remote("band", "zoe") is None


def test_a_group_known_only_from_elsewhere_takes_the_first_local_password() -> None:
    directory = Directory()
    directory.add_remote("band", "zoe")
    assert directory.groups["band"].password is None
    ana = connect(1)
    directory.join(ana, "band", "ana", PasswordHash("gpw"), PasswordHash("p"))
    password = directory.groups["band"].password
    assert password is not None and password.matches("gpw")
    assert directory.remove_remote("band", "zoe") is not None
    directory.leave(ana)
    assert directory.groups == {}
