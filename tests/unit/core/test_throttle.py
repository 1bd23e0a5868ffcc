"""The failed-login throttle: guessing slowed, the owner and a classroom never locked out."""

from __future__ import annotations

import pytest

from tcposcrouter.core.throttle import LoginThrottle

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
