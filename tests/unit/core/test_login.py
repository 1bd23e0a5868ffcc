"""Login: the register checks against the directory, and the throttle in front of them."""

from __future__ import annotations

import pytest

from support.net import RecordingSink
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.directory import Directory
from tcposcrouter.core.login import Joining, Login
from tcposcrouter.core.outbox import Outbox
from tcposcrouter.core.pinned import GroupRules, PinnedGroup
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


def test_in_a_cluster_every_register_makes_its_own_scrypt_hashes() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    login.hashes_shared = True
    checks = [login.prepare(stranger(number=n), request(f"u{n}"), 0.0) for n in range(3)]
    for check in checks:
        check.run()
    made = [check.new_group_hash for check in checks]
    assert len({id(h) for h in made}) == 3
    assert all(h is not None and h.encode().startswith("$scrypt$") for h in made)


def test_without_a_cluster_a_check_runs_on_the_event_loop_with_keyed_hashes() -> None:
    directory = Directory()
    login = Login(Limits(), directory)
    maker = login.prepare(stranger(number=1), request("ana"), 0.0)
    assert maker.run_quickly()
    assert maker.new_group_hash is not None and maker.new_user_hash is not None
    with pytest.raises(ValueError):  # keyed: nothing a store could take
        maker.new_group_hash.encode()
    joining = login.complete(maker, 0.0)
    assert joining is not None
    directory.join(maker.session, "band", "ana", joining.group_hash, joining.user_hash)
    wrong = login.prepare(stranger(number=2), request("eve", gpw="guess"), 0.0)
    assert wrong.run_quickly() and not wrong.group_ok  # a wrong password is known at once too
    with pytest.raises(RemoteError):
        login.complete(wrong, 0.0)
    back = login.prepare(stranger(number=3), request("ana", password="nope"), 0.0)
    assert back.run_quickly() and back.group_ok and not back.user_ok


def test_a_check_that_needs_scrypt_leaves_the_event_loop_with_nothing_done() -> None:
    directory = Directory()
    from_file = PasswordHash.parse(PasswordHash("gpw").encode())
    directory.apply_rules(GroupRules((PinnedGroup("class", from_file),)))
    login = Login(Limits(), directory)
    first = login.prepare(stranger(number=1), request("ana", group="class"), 0.0)
    assert not first.run_quickly()  # read from the configuration: scrypt, in a thread
    assert first.new_user_hash is None
    first.run()
    assert first.group_ok and first.new_user_hash is not None
    # Checked right once, the group password is remembered: the next one is quick.
    second = login.prepare(stranger(number=2), request("bob", group="class"), 0.0)
    assert second.run_quickly() and second.group_ok
    # A wrong one still costs scrypt.
    guess = login.prepare(stranger(number=3), request("eve", group="class", gpw="x"), 0.0)
    assert not guess.run_quickly()
    # In a cluster, new hashes go to the store: scrypt.
    login.hashes_shared = True
    shared = login.prepare(stranger(number=4), request("carl", group="new"), 0.0)
    assert not shared.run_quickly() and shared.new_group_hash is None


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
