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
