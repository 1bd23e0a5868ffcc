"""The register, both halves (core/register.py): begun on the packet loop, its passwords
checked at once or by the shell, then joined or refused, with the throttle in front."""

from __future__ import annotations

import pytest
from pythonosc.osc_message import OscMessage

from support.net import LP, Net, RecordingSink, error_of
from support.osc import IMMEDIATELY, bundle, msg, register
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.hub import WAIT_FOR_CHECK, Hub
from tcposcrouter.core.pinned import GroupRules, PinnedGroup
from tcposcrouter.core.register import PasswordCheck
from tcposcrouter.core.session import Session, SessionState
from tcposcrouter.errors import ErrorCode, RemoteError
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder, frame
from tcposcrouter.server.config import ServerConfig

HOME, ATTACKER = "198.51.100.4", "203.0.113.9"


class Desk:
    """A hub whose registers a test begins and finishes by hand, as the hub's packet loop and
    the shell do."""

    def __init__(self, limits: Limits | None = None, rules: GroupRules | None = None) -> None:
        config = ServerConfig(limits=limits or Limits(), group_rules=rules or GroupRules())
        self.hub = Hub(config)
        self.registers = self.hub.registers

    def connect(self, address: str = "192.0.2.9") -> Session:
        return self.hub.open(f"{address}:1", address, 0.0, RecordingSink(), LP)

    def begin(
        self,
        user: str = "ana",
        address: str = "192.0.2.9",
        group: str = "band",
        password: str = "pw",
        group_password: str = "gpw",
    ) -> PasswordCheck:
        """A register begun: its check, run at once (keyed) or waiting for the shell."""
        session = self.connect(address)
        message = register(user, group, password=password, group_password=group_password)
        self.registers.begin(session, message, 0.0)
        assert session.state is SessionState.REGISTERING
        ran = self.registers.take_ran()
        if ran is not None:
            return ran
        (check,) = self.registers.take()
        return check

    def attempt(
        self, user: str = "ana", address: str = "192.0.2.9", password: str = "pw"
    ) -> Session:
        """A whole register, its scrypt (if any) run as the shell would."""
        check = self.begin(user, address, password=password)
        check.run()
        self.hub.checked(check, 0.0)
        while waiting := self.registers.take():  # checked again: the group changed
            for again in waiting:
                again.run()
                self.hub.checked(again, 0.0)
        return check.session

    def refusal(self, user: str = "ana", address: str = "192.0.2.9", password: str = "pw") -> str:
        session = self.attempt(user, address, password)
        assert state(session) is SessionState.CLOSING
        self.hub.flush()
        sink = session.mailbox.sink
        assert isinstance(sink, RecordingSink) and sink.closed
        (packet,) = LengthPrefixDecoder().feed(b"".join(sink.writes))
        assert isinstance(packet, bytes)
        reply = OscMessage(packet)
        assert reply.address == "/oscrouter/error"
        return str(reply.params[0])


def state(session: Session) -> SessionState:
    """Its state now (a function, so that a type checker does not hold on to an earlier one)."""
    return session.state


def code_of(error: pytest.ExceptionInfo[RemoteError]) -> str:
    assert error.value.fatal
    return error.value.code


def test_new_group_and_user_join_with_new_hashes() -> None:
    desk = Desk()
    ana = desk.attempt()
    assert ana.state is SessionState.REGISTERED and ana.user is not None
    group = ana.user.group
    assert group.password is not None and group.password.matches("gpw")
    assert ana.user.password is not None and ana.user.password.matches("pw")


def test_existing_group_and_user_need_their_passwords() -> None:
    net = Net()
    ana = net.join("ana")
    again = net.connect()
    net.send(again, register("ana"))
    assert again.state is SessionState.REGISTERED and again.user is ana.user
    for wrong in (register("ana", group_password="wrong"), register("ana", password="wrong")):
        eve = net.connect()
        net.send(eve, wrong)
        assert eve.state is SessionState.CLOSING and error_of(net, eve) == ErrorCode.AUTH_FAILED
    bob = net.join("bob", password="other")
    assert bob.user is not None and bob.user is not ana.user


def test_full_group_and_full_router() -> None:
    net = Net(Limits(max_users_per_group=1, max_groups=1))
    net.join("ana")
    bob, carl = net.connect(), net.connect()
    net.send(bob, register("bob"))
    net.send(carl, register("carl", "other"))
    assert error_of(net, bob) == ErrorCode.GROUP_FULL
    assert error_of(net, carl) == ErrorCode.SERVER_FULL


def test_a_second_register_is_refused_and_the_member_stays() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, register("ana"))
    assert error_of(net, ana) == ErrorCode.ALREADY_REGISTERED
    assert ana.state is SessionState.REGISTERED


def test_what_follows_a_register_waits_for_it_and_is_routed_after_the_join() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob")
    ana = net.connect()
    net.send(ana, register("ana"), msg("/one", 1), msg("/two", 2))
    assert ana.state is SessionState.REGISTERING and ana.held is not None and len(ana.held) == 2
    assert net.got(bob) == []
    net.send(ana, msg("/three", 3))  # a later read waits too
    net.run_checks()
    assert state(ana) is SessionState.REGISTERED and ana.held is None
    assert [a for a, _ in net.got_messages(bob)] == [
        "/oscrouter/userlist",
        "/one",
        "/two",
        "/three",
    ]


def test_a_check_against_a_group_that_changed_meanwhile_is_done_again() -> None:
    desk = Desk()
    ana = desk.begin("ana")  # no group yet: to be created, run at once
    desk.registers.hashes_shared = True  # so that the second check waits for "the shell"
    bob = desk.begin("bob", group_password="theirs")
    bob.run()
    desk.hub.checked(ana, 0.0)  # ana made the group meanwhile, with another password
    desk.hub.checked(bob, 0.0)
    assert state(bob.session) is SessionState.REGISTERING  # checked again against ana's group
    assert desk.hub.statistics().password_checks == 3
    (again,) = desk.registers.take()
    again.run()
    desk.hub.checked(again, 0.0)
    assert state(bob.session) is SessionState.CLOSING  # the wrong password for that group


def test_in_a_cluster_every_register_makes_its_own_scrypt_hashes() -> None:
    desk = Desk()
    desk.registers.hashes_shared = True
    checks = [desk.begin(f"u{n}") for n in range(3)]
    for check in checks:
        check.run()
    made = [check.new_group_hash for check in checks]
    assert len({id(h) for h in made}) == 3
    assert all(h is not None and h.encode().startswith("$scrypt$") for h in made)


def test_without_a_cluster_a_check_runs_on_the_event_loop_with_keyed_hashes() -> None:
    desk = Desk()
    maker = desk.begin("ana")  # from take_ran: run at once
    assert maker.new_group_hash is not None and maker.new_user_hash is not None
    with pytest.raises(ValueError):  # keyed: nothing a store could take
        maker.new_group_hash.encode()
    desk.hub.checked(maker, 0.0)
    wrong = desk.begin("eve", group_password="guess")
    assert not wrong.group_ok  # a wrong password is known at once too
    back = desk.begin("ana", password="nope")
    assert back.group_ok and not back.user_ok


def test_a_check_that_needs_scrypt_leaves_the_event_loop_with_nothing_done() -> None:
    from_file = PasswordHash.parse(PasswordHash("gpw").encode())
    desk = Desk(rules=GroupRules((PinnedGroup("class", from_file),)))
    first = desk.begin("ana", group="class")
    assert desk.registers.take_ran() is None and first.new_user_hash is None  # for the shell
    first.run()
    assert first.group_ok and first.new_user_hash is not None
    desk.hub.checked(first, 0.0)
    # Checked right once, the group password is remembered: the next one is quick.
    second = desk.begin("bob", group="class")
    assert second.group_ok and second.new_user_hash is not None
    # A wrong one still costs scrypt.
    guess = desk.begin("eve", group="class", group_password="x")
    assert guess.group_ok and guess.new_user_hash is None  # not run yet
    # In a cluster, new hashes go to the store: scrypt.
    desk.registers.hashes_shared = True
    shared = desk.begin("carl", group="new")
    assert shared.new_group_hash is None


def test_a_throttled_register_is_refused_before_any_password_is_looked_at() -> None:
    desk = Desk(Limits(login_failures_allowed=2))
    desk.attempt()  # ana in band
    for _ in range(2):
        assert desk.refusal("ana", ATTACKER, password="guess") == ErrorCode.AUTH_FAILED
    with pytest.raises(RemoteError) as info:  # the right password, too early
        desk.registers.begin(desk.connect(ATTACKER), register("ana"), 0.0)
    assert code_of(info) == ErrorCode.LOGIN_THROTTLED and "ana in group band" in info.value.detail
    assert desk.attempt("ana", HOME).state is SessionState.REGISTERED  # others are fine
    assert desk.attempt("bob", ATTACKER).state is SessionState.REGISTERED  # other accounts too


def test_a_register_through_the_hub_in_one_read_joins_within_it() -> None:
    hub = Hub(ServerConfig())
    session = hub.open("192.0.2.9:1", "192.0.2.9", 0.0, RecordingSink())
    assert hub.receive(session, frame(register("ana"), LP), 0.0) == 0.0
    assert session.state is SessionState.REGISTERED


def test_a_returning_user_replaces_its_silent_connection_at_the_cap() -> None:
    net = Net(Limits(max_connections_per_address=2))
    dead = net.join("ana")  # its laptop's NAT mapping is gone; the router does not know yet
    bob = net.join("bob")
    net.now += 30
    net.send(bob, msg("/still", "here"))
    back = net.join("ana")  # the SuperCollider client reconnects with the same name
    assert dead.state is SessionState.CLOSING and back.state is SessionState.REGISTERED
    assert bob.state is SessionState.REGISTERED
    assert net.hub.statistics().replaced == 1
    assert net.got_messages(bob)[-1] == ("/oscrouter/userlist", ["ana", "bob"])


def test_group_full_and_too_many_groups() -> None:
    net = Net(Limits(max_users_per_group=2, max_groups=2))
    net.join("ana")
    net.join("bob")
    net.join("bob")  # another connection of a member is not another user
    carl = net.connect()
    net.send(carl, register("carl"))
    assert error_of(net, carl) == "group_full"
    net.join("dan", group="second")
    eve = net.connect()
    net.send(eve, register("eve", group="third"))
    assert error_of(net, eve) == "server_full"
    assert sorted(net.hub.directory.groups) == ["band", "second"]


def test_failed_logins_slow_that_account_from_that_address_only() -> None:
    net = Net(Limits(login_failures_allowed=3))
    net.join("ana", password="right")
    for _ in range(3):
        guess = net.connect(address="203.0.113.9")
        net.send(guess, register("ana", password="wrong"))
        assert error_of(net, guess) == "auth_failed"
    # That address at that account waits now: even the right password is not looked at.
    locked = net.connect(address="203.0.113.9")
    net.send(locked, register("ana", password="right"))
    assert error_of(net, locked) == "login_throttled"
    # Anybody else behind that address, and ana from anywhere else, is not affected.
    net.join("bob", address="203.0.113.9")
    net.join("ana", password="right", address="198.51.100.4")
    net.now += 1.0
    net.join("ana", password="right", address="203.0.113.9")


def test_packets_after_a_register_wait_for_its_check_in_order() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob")
    ana = net.connect()
    net.send(ana, register("ana"), msg("/one", 1))
    net.send(ana, msg("/two", 2))  # a read that came before the shell paused reading
    assert net.pauses[ana.id] == WAIT_FOR_CHECK and ana.state is SessionState.REGISTERING
    assert net.got(bob) == []
    net.send(bob, msg("/meanwhile", 0))  # routing goes on for everyone else
    assert net.got_messages(ana) == []
    net.run_checks()
    assert net.pauses[ana.id] == 0.0
    assert [a for a, _ in net.got_messages(bob)] == ["/oscrouter/userlist", "/one", "/two"]


def test_without_a_cluster_a_register_joins_within_the_read_that_brought_it() -> None:
    net = Net()
    bob = net.join("bob")
    ana = net.connect()
    read = frame(register("ana"), Framing.LENGTH_PREFIX) + frame(
        msg("/one", 1), Framing.LENGTH_PREFIX
    )
    assert net.hub.receive(ana, read, net.now) == 0.0  # reading goes on: nothing to wait for
    assert ana.state is SessionState.REGISTERED and not net.hub.registers.waiting
    net.collect()
    assert [a for a, _ in net.got_messages(bob)] == ["/oscrouter/userlist", "/one"]
    assert [a for a, _ in net.got_messages(ana)][:2] == [
        "/oscrouter/register/ana/1",
        "/oscrouter/register",
    ]
    # Wrong passwords are known as quickly, and refused.
    eve = net.connect()
    net.hub.receive(eve, frame(register("bob", password="guess"), Framing.LENGTH_PREFIX), net.now)
    net.collect()
    assert error_of(net, eve) == "auth_failed"


def test_a_register_in_a_bundle_holds_what_follows_it() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob")
    ana = net.connect()
    sent = bundle(IMMEDIATELY, register("ana"), msg("/oscrouter/ping", "ana"), msg("/note", 1))
    net.send(ana, sent)
    assert ana.user is None and ana.state is SessionState.REGISTERING and net.got(bob) == []
    net.run_checks()
    assert ana.state.value == "registered"
    # The user list for the register, then what is left of the bundle, with its time tag.
    userlist, rest = net.got(bob)
    assert userlist.startswith(b"/oscrouter/userlist")
    assert rest == bundle(IMMEDIATELY, msg("/note", 1))


def test_a_failed_check_drops_what_waited_behind_it() -> None:
    net = Net(hold_checks=True)
    bob = net.join("bob", password="right")
    thief = net.connect()
    net.send(thief, register("bob", password="wrong"), msg("/spoof", 1))
    net.run_checks()
    assert thief.state is SessionState.CLOSING and error_of(net, thief) == "auth_failed"
    assert net.got(bob) == []


def test_two_first_players_of_a_new_group_race_and_the_second_is_checked_again() -> None:
    net = Net(hold_checks=True)
    ana, bob = net.connect(), net.connect()
    net.send(ana, register("ana", group_password="ours"))
    net.send(bob, register("bob", group_password="mine"))  # both saw no group yet
    net.run_checks()
    assert ana.state is SessionState.REGISTERED
    assert bob.state is SessionState.CLOSING and error_of(net, bob) == "auth_failed"
    assert net.hub.statistics().password_checks == 3
