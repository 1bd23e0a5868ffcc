"""The decisions of a register through the cluster's store, with Redis's replies as bytes: won
the creation race, lost it and checked again, the store away, refused."""

from __future__ import annotations

import pytest

from support.net import Net, error_of
from support.osc import register
from tcposcrouter.cluster.register_round import (
    ATTEMPTS,
    RegisterRound,
    StoreKeptChanging,
    join_arguments,
    leave_needed,
    split_when_away,
    store_unavailable,
)
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.pinned import GroupRules, PinnedGroup
from tcposcrouter.core.register import PasswordCheck
from tcposcrouter.core.session import SessionState
from tcposcrouter.errors import ErrorCode
from tcposcrouter.limits import Limits


def parse(stored: bytes | None) -> PasswordHash | None:
    return None if stored is None else PasswordHash.parse(stored.decode())


def stored(password: str) -> bytes:
    """A hash as another node wrote it into the store."""
    return PasswordHash(password).encode().encode()


def checking(
    net: Net, user: str, group: str = "band", *, password: str = "pw", group_password: str = "gpw"
) -> PasswordCheck:
    """A register sent to the hub, its password check waiting (not run)."""
    session = net.connect()
    net.send(session, register(user, group, password=password, group_password=group_password))
    (check,) = net.checks
    net.checks.clear()
    return check


def hand_back(net: Net, check: PasswordCheck) -> None:
    """What the node does with a check it has carried through the store."""
    net.pauses[check.session.id] = net.hub.checked(check, net.now)
    net.collect()


def test_a_new_group_wins_the_race_and_joins() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana")
    round_ = RegisterRound([check], parse, net.hub.directory)
    assert round_.lookups() == [("band", "ana")]
    round_.learn([None, None])  # the store knows neither the group nor the user
    check.run()
    (claim,) = round_.claims()
    assert (claim.group, claim.user, claim.pinned_group, claim.pinned_user) == (
        "band",
        "ana",
        False,
        False,
    )
    assert claim.group_hash is check.new_group_hash and claim.group_hash is not None
    arguments = join_arguments("tcposcrouter:", "node-1", claim)
    assert arguments[:4] == ["tcposcrouter:", "node-1", "band", "ana"]
    assert arguments[4] == claim.group_hash.encode() and arguments[6:] == ["0", "0", "0", b""]
    # The group is new here: its claim loads the store's tempo and state, a new timeline
    # given for a group the store has none for.
    assert round_.loads == [True] and round_.groups_loading() == {"band"}
    assert join_arguments("p:", "n", claim, b"LINES")[8:] == ["1", b"LINES"]
    snapshot = [b"ok", b"LINES", b"1", b"0", []]
    assert round_.claimed([snapshot]) == []  # won: nothing to check again
    assert round_.snapshots == {"band": snapshot}
    hand_back(net, check)
    assert check.session.state is SessionState.REGISTERED
    assert not leave_needed(check, net.hub.directory)


def test_only_the_first_claim_of_a_group_without_a_copy_here_loads_it() -> None:
    net = Net(hold_checks=True)
    ana, bob = checking(net, "ana"), checking(net, "bob")
    round_ = RegisterRound([ana, bob], parse, net.hub.directory)
    round_.learn([stored("gpw"), None, stored("gpw"), None])
    ana.run()
    bob.run()
    assert len(round_.claims()) == 2 and round_.loads == [True, False]
    round_.claimed([[b"ok", b"L", b"1", b"0", []], [b"ok"]])
    hand_back(net, ana)
    net.checks.clear()  # bob's, checked again against the group ana made
    # Members here now: the group's copy is here, and the next register loads nothing.
    carl = checking(net, "carl")
    later = RegisterRound([carl], parse, net.hub.directory)
    later.learn([stored("gpw"), None])
    carl.run()
    later.claims()
    assert later.loads == [False] and later.groups_loading() == set()


def test_a_group_the_store_has_is_checked_against_its_hash() -> None:
    net = Net(hold_checks=True)
    right = checking(net, "ana", group_password="gpw")
    wrong = checking(net, "bob", group_password="guess")
    round_ = RegisterRound([right, wrong], parse, net.hub.directory)
    round_.learn([stored("gpw"), None, stored("gpw"), None])
    right.run()
    wrong.run()
    assert right.group_ok and not wrong.group_ok
    (claim,) = round_.claims()  # only what passed is claimed in the store
    assert claim.user == "ana" and claim.group_hash.matches("gpw")
    assert round_.claimed([[b"ok"]]) == []
    hand_back(net, right)
    hand_back(net, wrong)
    assert right.session.state is SessionState.REGISTERED
    assert error_of(net, wrong.session) == "auth_failed"
    assert not leave_needed(wrong, net.hub.directory)  # never claimed: nothing to undo


def test_a_lost_race_is_checked_again_against_the_winners_hash() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana", group_password="gpw")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    round_.claims()
    # Another node created the group first, with the same password: checked again, it joins.
    winner = stored("gpw")
    assert round_.claimed([[b"group", winner]]) == [check]
    assert check.elsewhere_group_hash is not None
    assert check.elsewhere_group_hash.encode() == winner.decode()
    check.run()
    (claim,) = round_.claims()
    assert claim.group_hash is check.elsewhere_group_hash
    assert round_.claimed([[b"ok"]]) == []
    hand_back(net, check)
    assert check.session.state is SessionState.REGISTERED


def test_a_lost_race_with_another_password_is_refused() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana", group_password="mine")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    round_.claims()
    assert round_.claimed([[b"group", stored("theirs")]]) == [check]
    check.run()
    assert not check.group_ok
    assert round_.claims() == []  # nothing left to claim
    hand_back(net, check)
    assert error_of(net, check.session) == "auth_failed"


def test_a_user_created_elsewhere_first_is_checked_again() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana", password="pw")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    round_.claims()
    assert round_.claimed([[b"user", stored("pw")]]) == [check]
    assert check.elsewhere_user_hash is not None and check.elsewhere_group_hash is None
    check.run()
    assert check.user_ok


def test_a_group_that_keeps_changing_is_refused() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    for _ in range(ATTEMPTS):
        round_.claims()
        assert round_.claimed([[b"group", stored("gpw")]]) == [check]
        check.run()
    with pytest.raises(StoreKeptChanging):
        round_.claims()


def test_with_the_store_away_only_what_this_node_knows_is_decided() -> None:
    net = Net(hold_checks=True)
    net.join("ana")  # group band and user ana, with their hashes, are here
    net.checks.clear()
    known = checking(net, "ana")
    new_user = checking(net, "bob")
    new_group = checking(net, "carl", group="elsewhere")
    local, refused = split_when_away([known, new_user, new_group])
    assert local == [known] and refused == [new_user, new_group]
    net.hub.registers.refused(new_group, store_unavailable(), net.now)
    net.collect()
    assert error_of(net, new_group.session) == ErrorCode.STORE_UNAVAILABLE


def test_a_pinned_group_and_its_users_are_claimed_without_their_hashes() -> None:
    net = Net(hold_checks=True)
    spec = PinnedGroup("class", PasswordHash("gpw"), users={"teacher": PasswordHash("pw")})
    net.hub.directory.apply_rules(GroupRules((spec,)))
    check = checking(net, "teacher", group="class")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    (claim,) = round_.claims()
    assert claim.pinned_group and claim.pinned_user
    assert join_arguments("p:", "n", claim)[6:8] == ["1", "1"]


def test_a_claimed_register_the_hub_then_refuses_leaves_the_store() -> None:
    net = Net(Limits(max_connections_per_address=1), hold_checks=True)
    net.join("ana")
    check = checking(net, "bob")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([stored("gpw"), None])
    check.run()
    round_.claims()
    assert round_.claimed([[b"ok"]]) == []  # the store counts bob present on this node
    hand_back(net, check)
    assert error_of(net, check.session) == "server_full"
    assert leave_needed(check, net.hub.directory)


def test_a_register_closed_while_it_was_checked_leaves_the_store() -> None:
    net = Net(hold_checks=True)
    check = checking(net, "ana")
    round_ = RegisterRound([check], parse, net.hub.directory)
    round_.learn([None, None])
    check.run()
    round_.claims()
    round_.claimed([[b"ok"]])
    net.leave(check.session)
    assert leave_needed(check, net.hub.directory)


def test_while_the_store_is_restored_only_creations_wait() -> None:
    net = Net(hold_checks=True)
    new_group = checking(net, "ana", group="fresh")
    new_user = checking(net, "bob", group="band")
    known = checking(net, "cy", group="band")
    round_ = RegisterRound([new_group, new_user, known], parse, net.hub.directory)
    # The store has "band" and cy, written back; nothing of "fresh", nor bob.
    round_.learn([None, None, stored("gpw"), None, stored("gpw"), stored("pw")])
    assert round_.without_creations() == [new_group, new_user]
    assert round_.batch == [known]
    known.run()
    (claim,) = round_.claims()
    assert (claim.group, claim.user) == ("band", "cy")
