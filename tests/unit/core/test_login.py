"""Login: the register checks against the directory, and the failed-login throttle."""

from __future__ import annotations

import pytest

from support.net import RecordingSink
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.login import Login, LoginThrottle
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
    directory.join(session, req.group, req.group_password, req.user, req.user_password)
    return session


def refusal(login: Login, req: RegisterRequest, address: str = "192.0.2.9") -> str:
    with pytest.raises(RemoteError) as info:
        login.check(req, address, now=0.0)
    assert info.value.fatal
    return info.value.code


def test_new_group_and_user_are_to_be_created() -> None:
    directory = Directory()
    assert Login(Limits(), directory).check(request(), "192.0.2.9", 0.0) == (None, None)


def test_existing_group_and_user_need_their_passwords() -> None:
    directory = Directory()
    ana = member(directory, request())
    login = Login(Limits(), directory)
    group, user = login.check(request(), "192.0.2.9", 0.0)
    assert group is ana.user.group and user is ana.user  # type: ignore[union-attr]
    assert refusal(login, request(gpw="wrong")) == ErrorCode.AUTH_FAILED
    assert refusal(login, request(password="wrong")) == ErrorCode.AUTH_FAILED
    assert login.check(request("bob", "other"), "192.0.2.9", 0.0)[1] is None  # a new user


def test_full_group_and_full_router() -> None:
    directory = Directory()
    member(directory, request("ana"))
    login = Login(Limits(max_users_per_group=1, max_groups=1), directory)
    assert refusal(login, request("bob")) == ErrorCode.GROUP_FULL
    assert refusal(login, request("bob", group="other")) == ErrorCode.SERVER_FULL


def test_failures_lock_the_address_out() -> None:
    directory = Directory()
    member(directory, request())
    login = Login(Limits(login_failures_allowed=2), directory)
    for _ in range(2):
        assert refusal(login, request(password="guess")) == ErrorCode.AUTH_FAILED
    assert refusal(login, request()) == ErrorCode.LOGIN_THROTTLED  # not even looked at
    assert login.check(request(), "198.51.100.1", 0.0)[1] is not None  # others are fine


def test_login_throttle_waits_grow_and_are_per_address() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60)
    for i in range(4):
        throttle.failed("203.0.113.5", now=float(i))
        assert throttle.wait_needed("203.0.113.5", now=float(i)) == 0
    throttle.failed("203.0.113.5", now=10.0)
    assert throttle.wait_needed("203.0.113.5", now=10.0) == 1.0
    assert throttle.wait_needed("203.0.113.5", now=11.0) == 0
    throttle.failed("203.0.113.5", now=11.0)
    assert throttle.wait_needed("203.0.113.5", now=11.0) == 2.0
    for _ in range(20):
        throttle.failed("203.0.113.5", now=12.0)
    assert throttle.wait_needed("203.0.113.5", now=12.0) == 60.0  # capped
    assert throttle.wait_needed("198.51.100.7", now=12.0) == 0


def test_login_throttle_forgets_quiet_addresses_and_stays_bounded() -> None:
    throttle = LoginThrottle(allowed=1, max_delay=60)
    throttle.failed("203.0.113.5", now=0.0)
    assert throttle.wait_needed("203.0.113.5", now=0.5) > 0
    assert throttle.wait_needed("203.0.113.5", now=700.0) == 0
    assert len(throttle) == 0
    for i in range(60_000):
        throttle.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", now=1.0)
    assert len(throttle) == 50_000
