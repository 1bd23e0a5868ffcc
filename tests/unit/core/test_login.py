"""Login: the register checks against the directory, and the failed-login throttle."""

from __future__ import annotations

import pytest

from support.net import RecordingSink
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.login import Joining, Login
from tcposcrouter.core.login_report import LoginReport
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.session import Session
from tcposcrouter.core.throttle import LoginThrottle
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


def test_one_address_at_one_account_waits_longer_and_longer() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    for i in range(5):
        assert throttle.claim(ATTACKER, ACCOUNT, now=float(i)) == 0  # five free guesses
    assert throttle.claim(ATTACKER, ACCOUNT, now=4.5) == pytest.approx(0.5)  # 1 s after the last
    assert throttle.claim(ATTACKER, ACCOUNT, now=5.0) == 0
    assert throttle.claim(ATTACKER, ACCOUNT, now=6.0) == pytest.approx(1.0)  # now 2 s
    for i in range(20):
        throttle.claim(ATTACKER, ACCOUNT, now=1000.0 + 61 * i)
    assert throttle.wait_needed(ATTACKER, ACCOUNT, now=2159.0) == pytest.approx(60.0)  # capped


def test_a_classroom_registering_at_once_through_one_address_is_not_a_guesser() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    # Eighty checks in flight at once, at eighty accounts: none has failed.
    assert all(throttle.claim(NAT, ("class", f"s{i}"), now=0.0) == 0 for i in range(80))


def test_guesses_on_many_connections_at_once_are_counted_before_they_finish() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    claimed = [throttle.claim(ATTACKER, ACCOUNT, now=0.0) for _ in range(100)]
    assert claimed.count(0.0) == 5  # a hundred registers in flight: five get checked


def test_the_owner_elsewhere_is_checked_at_once_whatever_the_attack() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    for i in range(2000):
        throttle.claim(f"203.0.113.{i % 20}", ACCOUNT, now=i * 0.01)
    assert throttle.claim(HOME, ACCOUNT, now=20.0) == 0
    throttle.succeeded(HOME, ACCOUNT, now=20.0)
    assert throttle.claim(HOME, ACCOUNT, now=20.5) == 0  # a second connection of the owner


def test_an_account_attacked_from_a_few_addresses_gets_one_check_a_second() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    checks = 0
    for step in range(600):  # 60 s of 10 guesses a second, from 20 addresses in turn
        now = step * 0.1
        address = f"203.0.113.{step % 20}"
        if throttle.claim(address, ACCOUNT, now) == 0:
            checks += 1
    # The first guess from each address, the five free ones, then about one a second.
    assert checks <= 20 + 5 + 60


def test_a_classroom_behind_one_address_is_not_slowed_by_mistypes() -> None:
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    for student in range(5):
        for attempt_number in range(4):
            assert throttle.claim(NAT, ("class", f"s{student}"), now=float(attempt_number)) == 0
        throttle.succeeded(NAT, ("class", f"s{student}"), now=4.0)
    for student in range(5, 80):
        account = ("class", f"s{student}")
        assert throttle.claim(NAT, account, now=5.0) == 0
        throttle.succeeded(NAT, account, now=5.0)


def test_an_address_failing_across_many_accounts_is_slowed_everywhere_but_where_it_is_known() -> (
    None
):
    throttle = LoginThrottle(allowed=5, max_delay=60, accounts_per_address=20)
    throttle.claim(ATTACKER, ("mine", "me"), now=0.0)
    throttle.succeeded(ATTACKER, ("mine", "me"), now=0.0)
    for i in range(20):
        assert throttle.claim(ATTACKER, ("band", f"user{i}"), now=1.0) == 0
        throttle.failed(ATTACKER, ("band", f"user{i}"), now=1.0)
    assert throttle.claim(ATTACKER, ("band", "another"), now=1.0) == pytest.approx(1.0)
    assert throttle.claim(ATTACKER, ("mine", "me"), now=1.0) == 0  # logged in there before
    assert throttle.claim(HOME, ("band", "another"), now=1.0) == 0


def test_the_throttle_forgets_quiet_records_and_stays_bounded() -> None:
    throttle = LoginThrottle(allowed=1, max_delay=60, accounts_per_address=20)
    throttle.claim(ATTACKER, ACCOUNT, now=0.0)
    assert throttle.claim(ATTACKER, ACCOUNT, now=0.5) > 0
    assert throttle.claim(ATTACKER, ACCOUNT, now=700.0) == 0  # forgotten after ten minutes
    throttle.forget_old(now=1400.0)
    assert len(throttle) == 0
    for i in range(60_000):
        throttle.claim(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", ACCOUNT, now=1500.0)
    assert len(throttle) <= 2 * 50_000 + 1


def test_the_login_report_sums_up_per_address_and_minute() -> None:
    report = LoginReport()
    for i in range(30):
        report.failed(ATTACKER, ("band", f"u{i % 3}"), now=float(i))
    report.throttled(ATTACKER, now=31.0)
    assert report.due(now=59.0) == []
    (line,) = report.due(now=60.0)
    assert line == (
        f"failed logins from {ATTACKER} in 60 s: 30 wrong passwords at 3 accounts, "
        "1 refused as throttled"
    )
    assert report.due(now=200.0) == [] and report.first(ATTACKER)


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
