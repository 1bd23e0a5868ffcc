"""Login: the register checks against the directory, and the throttle in front of them."""

from __future__ import annotations

import pytest

from support.net import RecordingSink
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.login import Joining, Login
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import Session
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.limits import Limits
from tcposcrouter.osc.messages import RegisterRequest


def request(
    user: str = "ana", password: str = "pw", group: str = "band", gpw: str = "gpw"
) -> RegisterRequest:
    return RegisterRequest(user, password, group, gpw, ("i", 1))


def member(directory: Directory, req: RegisterRequest, number: int = 1) -> Session:
    mailbox = Outbox().mailbox(RecordingSink(), None, number)
    session = Session.open(number, "peer", "192.0.2.1", 0.0, mailbox, 1024)
    directory.join(
        session,
        req.group,
        req.user,
        PasswordHash(req.group_password),
        PasswordHash(req.user_password),
    )
    return session


def stranger(address: str = "192.0.2.9", number: int = 99) -> Session:
    mailbox = Outbox().mailbox(RecordingSink(), None, number)
    return Session.open(number, f"{address}:1", address, 0.0, mailbox, 1024)


def attempt(
    login: Login, req: RegisterRequest, address: str = "192.0.2.9", now: float = 0.0
) -> Joining | None:
    """A register's whole check, its scrypt run at once."""
    check = login.prepare(stranger(address), req, now)
    check.run()
    return login.complete(check, now)


def refusal(
    login: Login, req: RegisterRequest, address: str = "192.0.2.9", now: float = 0.0
) -> str:
    with pytest.raises(RemoteError) as info:
        attempt(login, req, address, now)
    assert info.value.fatal
    return info.value.code


def test_new_group_and_user_are_to_be_created_with_new_hashes() -> None:
    directory = Directory()
    joining = attempt(Login(Limits(), directory), request())
    assert joining is not None and joining.group is None and joining.user is None
    assert joining.group_hash is not None and joining.group_hash.matches("gpw")
    assert joining.user_hash is not None and joining.user_hash.matches("pw")


def test_existing_group_and_user_need_their_passwords() -> None:
    directory = Directory()
    ana = member(directory, request())
    login = Login(Limits(), directory)
    joining = attempt(login, request())
    assert joining is not None and joining.user is ana.user and joining.user_hash is None
    assert refusal(login, request(gpw="wrong")) == ErrorCode.AUTH_FAILED
    assert refusal(login, request(password="wrong")) == ErrorCode.AUTH_FAILED
    bob = attempt(login, request("bob", "other"))
    assert bob is not None and bob.user is None and bob.user_hash is not None


def test_full_group_and_full_router() -> None:
    directory = Directory()
    member(directory, request("ana"))
    login = Login(Limits(max_users_per_group=1, max_groups=1), directory)
    assert refusal(login, request("bob")) == ErrorCode.GROUP_FULL
    assert refusal(login, request("bob", group="other")) == ErrorCode.SERVER_FULL


def test_a_check_against_a_group_that_changed_meanwhile_is_done_again() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    check = login.prepare(stranger(), request(), 0.0)  # no group yet: to be created
    check.run()
    member(directory, request("bob", gpw="theirs"))  # somebody else created it first
    assert login.complete(check, 0.0) is None
    assert refusal(login, request()) == ErrorCode.AUTH_FAILED  # checked against theirs


def test_a_class_joining_at_once_makes_one_group_hash_and_checks_once() -> None:
    """Twenty registers for a group nobody has made yet, all prepared before any finishes (a
    class joining at once): the first makes the group; the others make only their own user
    hash, and join the group it made without a second round of scrypt."""
    directory = Directory()
    login = Login(Limits(), directory)
    checks = [login.prepare(stranger(number=n), request(f"u{n}"), 0.0) for n in range(20)]
    for check in checks:
        check.run()
    assert checks[0].new_group_hash is not None
    assert all(check.new_group_hash is None for check in checks[1:])  # followers
    assert all(check.new_user_hash is not None for check in checks)
    maker = login.complete(checks[0], 0.0)
    assert maker is not None and maker.group is None and maker.group_hash is not None
    directory.join(checks[0].session, "band", "u0", maker.group_hash, maker.user_hash)
    group = directory.groups["band"]
    for n, check in enumerate(checks[1:], 1):
        joining = login.complete(check, 0.0)
        assert joining is not None, f"u{n} must join without a second check"
        assert joining.group is group and joining.user is None
        assert joining.user_hash is check.new_user_hash
        directory.join(check.session, "band", f"u{n}", None, joining.user_hash)
    assert list(group.users) == [f"u{n}" for n in range(20)]
    assert group.users["u7"].password is not None
    assert group.users["u7"].password.matches("pw")


def test_a_follower_with_the_wrong_group_password_is_checked_again_and_refused() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    maker = login.prepare(stranger(number=1), request("ana"), 0.0)
    wrong = login.prepare(stranger(number=2), request("eve", gpw="guess"), 0.0)
    for check in (maker, wrong):
        check.run()
    assert wrong.follows
    joining = login.complete(maker, 0.0)
    assert joining is not None and joining.group_hash is not None
    directory.join(maker.session, "band", "ana", joining.group_hash, joining.user_hash)
    assert login.complete(wrong, 0.0) is None  # not let in on the maker's word
    again = login.prepare(wrong.session, wrong.request, 0.0, again=True)
    assert not again.follows
    again.run()  # the full scrypt check against the group's hash
    with pytest.raises(RemoteError) as info:
        login.complete(again, 0.0)
    assert info.value.code == ErrorCode.AUTH_FAILED


def test_followers_of_a_maker_that_was_refused_make_the_group_themselves() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    maker = login.prepare(stranger(number=1), request("ana"), 0.0)
    follower = login.prepare(stranger(number=2), request("bob"), 0.0)
    assert follower.follows
    login.release(maker, 0.0)  # its connection went before its check could finish
    follower.run()
    assert login.complete(follower, 0.0) is None  # no group was made: not joined
    again = login.prepare(follower.session, follower.request, 0.0, again=True)
    again.run()
    joining = login.complete(again, 0.0)
    assert joining is not None and joining.group is None and joining.group_hash is not None


def test_in_a_cluster_every_register_makes_its_own_hashes() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    login.registers_follow = False
    checks = [login.prepare(stranger(number=n), request(f"u{n}"), 0.0) for n in range(3)]
    for check in checks:
        check.run()
    assert not any(check.follows for check in checks)
    assert all(check.new_group_hash is not None for check in checks)


ACCOUNT = ("band", "ana")
HOME, ATTACKER, NAT = "198.51.100.4", "203.0.113.9", "192.0.2.50"


def test_a_throttled_register_is_refused_before_any_password_is_looked_at() -> None:
    directory = Directory()
    member(directory, request())
    login = Login(Limits(login_failures_allowed=2), directory)
    for _ in range(2):
        assert refusal(login, request(password="guess"), ATTACKER) == ErrorCode.AUTH_FAILED
    with pytest.raises(RemoteError) as info:
        login.prepare(stranger(ATTACKER), request(), 0.0)  # the right password, too early
    assert info.value.code == ErrorCode.LOGIN_THROTTLED and "ana in group band" in info.value.detail
    assert attempt(login, request(), HOME) is not None  # others are fine
    assert attempt(login, request("bob"), ATTACKER) is not None  # other accounts too
