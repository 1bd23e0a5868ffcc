"""Pinned groups, closed servers and reloads, through the hub with bytes only."""

from __future__ import annotations

from typing import Any

from support.net import Net, error_of
from support.osc import msg, register
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.pinned import GroupRules, PinnedGroup
from tcposcrouter.core.session import SessionState
from tcposcrouter.limits import Limits
from tcposcrouter.server.config import ServerConfig


def pinned(name: str = "class", password: str = "classpw", **options: Any) -> PinnedGroup:
    return PinnedGroup(name, PasswordHash(password), **options)


def net_with(*groups: PinnedGroup, allow_new_groups: bool = True, **limits: int) -> Net:
    net = Net(Limits(**limits))
    net.hub.directory.apply_rules(GroupRules(groups, allow_new_groups))
    return net


def refused(
    net: Net, user: str, group: str, password: str = "pw", group_password: str = "x"
) -> str:
    session = net.connect()
    net.send(session, register(user, group, password=password, group_password=group_password))
    assert session.state is not SessionState.REGISTERED
    (address, args), *_ = net.got_messages(session)
    assert address == "/oscrouter/error"
    return f"{args[0]}: {args[1]}"


def test_a_pinned_group_exists_empty_and_keeps_its_password() -> None:
    net = net_with(pinned())
    assert "class" in net.hub.directory.groups
    assert refused(net, "ana", "class", group_password="mine") == (
        "auth_failed: wrong password for group class"
    )
    ana = net.join("ana", "class", group_password="classpw")
    net.leave(ana)
    # Empty again, and still nobody can take the name with another password.
    assert "class" in net.hub.directory.groups
    assert refused(net, "bob", "class", group_password="taken?").startswith("auth_failed")
    net.join("bob", "class", group_password="classpw")


def test_an_ordinary_group_still_goes_when_empty() -> None:
    net = net_with(pinned())
    ana = net.join("ana", "band")
    net.leave(ana)
    assert "band" not in net.hub.directory.groups


def test_pinned_users_have_their_own_passwords_and_make_the_roster() -> None:
    net = net_with(pinned(users={"ana": PasswordHash("ana-pw")}, other_users=False))
    assert refused(net, "ana", "class", password="guess", group_password="classpw") == (
        "auth_failed: wrong password for user ana in group class"
    )
    assert refused(net, "zed", "class", group_password="classpw") == (
        "auth_failed: group class admits only its listed users, and zed is not one of them"
    )
    ana = net.join("ana", "class", password="ana-pw", group_password="classpw")
    net.leave(ana)
    # Away, the name still belongs to its password.
    assert refused(net, "ana", "class", password="pw", group_password="classpw").startswith(
        "auth_failed: wrong password for user ana"
    )


def test_pinned_users_with_guests() -> None:
    net = net_with(pinned(users={"ana": PasswordHash("ana-pw")}, other_users=True))
    net.join("guest", "class", group_password="classpw")
    assert refused(net, "ana", "class", group_password="classpw").startswith("auth_failed")


def test_a_closed_server_refuses_new_groups_with_a_reason() -> None:
    net = net_with(pinned(), allow_new_groups=False)
    assert refused(net, "ana", "clas", group_password="classpw") == (
        "auth_failed: no group clas on this router, and it does not create new groups: "
        "check the group name"
    )
    net.join("ana", "class", group_password="classpw")
    # A mistyped group name is not a password guess: the right one is let in at once.
    for _ in range(10):
        refused(net, "bob", "typo")
    net.join("bob", "class", group_password="classpw")


def test_a_pinned_group_has_its_own_user_limit() -> None:
    net = net_with(pinned(max_users=2), max_users_per_group=10)
    net.join("ana", "class", group_password="classpw")
    net.join("bob", "class", group_password="classpw")
    assert refused(net, "carl", "class", group_password="classpw").startswith("group_full")
    for name in "abc":
        net.join(name, "band")  # other groups keep the router's limit


def test_new_rules_drop_nobody() -> None:
    net = net_with(pinned())
    ana = net.join("ana", "class", group_password="classpw")
    band = net.join("bob", "band")  # created by a client
    # The reload pins "band" with a password of the operator's, changes "class"'s password,
    # and closes the router to new groups.
    net.hub.directory.apply_rules(
        GroupRules((pinned("band", "stagepw"), pinned("class", "newpw")), allow_new_groups=False)
    )
    assert ana.state is SessionState.REGISTERED and band.state is SessionState.REGISTERED
    net.send(band, msg("/still/here", 1))
    assert net.got_messages(band) == []  # nobody else in band
    assert refused(net, "carl", "band", group_password="gpw").startswith("auth_failed")
    net.join("carl", "band", group_password="stagepw")
    assert refused(net, "dan", "class", group_password="classpw").startswith("auth_failed")
    net.join("dan", "class", group_password="newpw")
    assert net.got_messages(ana) == [("/oscrouter/userlist", ["ana", "dan"])]


def test_an_unpinned_empty_group_goes_and_its_name_is_free() -> None:
    net = net_with(pinned("old"))
    net.hub.directory.apply_rules(GroupRules())
    assert "old" not in net.hub.directory.groups
    net.join("ana", "old", group_password="anything")


def test_a_rule_change_during_a_password_check_is_checked_again() -> None:
    net = Net(hold_checks=True)
    net.hub.directory.apply_rules(GroupRules((pinned(),)))
    ana = net.connect()
    net.send(ana, register("ana", "class", group_password="classpw"))
    net.hub.directory.apply_rules(GroupRules((pinned("class", "changed"),)))
    net.run_checks()  # its check ran against the old password: done again, and refused
    assert ana.state is not SessionState.REGISTERED
    assert error_of(net, ana) == "auth_failed"


def test_new_limits_apply_to_newcomers_and_drop_nobody() -> None:
    net = Net(Limits(max_users_per_group=10, max_packet_size=4096))
    members = [net.join(name) for name in ("ana", "bob", "carl")]
    net.hub.reconfigure(
        ServerConfig(limits=Limits(max_users_per_group=2, max_packet_size=64)), net.now
    )
    assert all(m.state is SessionState.REGISTERED for m in members)
    assert refused(net, "dan", "band", group_password="gpw").startswith("group_full")
    for m in members:
        net.got(m)
    net.send(members[1], msg("/small", 1))
    assert [len(net.got(m)) for m in members] == [1, 0, 1]
    net.send(members[0], msg("/big", "x" * 100))  # the new size limit, with its usual ending
    assert error_of(net, members[0]) == "packet_too_large"
    assert members[1].state is SessionState.REGISTERED
