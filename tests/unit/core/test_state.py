"""A group's state (core/state.py), driven through the pure hub: a set delivered as the message
itself and kept, a late joiner told everything before live traffic, followers, clears, the
bounds, and what is refused."""

from __future__ import annotations

from support.net import Net, error_of
from support.osc import msg, register
from tcposcrouter.limits import Limits


def state_told(net: Net, name: str) -> list[tuple[str, list[object]]]:
    """`name` registers in the group "band": the state it is told (begin to end)."""
    session = net.connect()
    net.send(session, register(name))
    got = net.got_messages(session)
    addresses = [address for address, _ in got]
    begin = addresses.index("/oscrouter/state/begin")
    return got[begin : addresses.index("/oscrouter/state/end") + 1]


def test_a_set_reaches_the_others_as_the_message_itself_and_a_late_joiner_gets_it_all() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana), net.got(bob)
    net.send(ana, msg("/oscrouter/state", "/fader", 0.5))
    net.send(ana, msg("/oscrouter/state", "/text", "hello"))
    net.send(ana, msg("/oscrouter/state", "/fader", 0.25))  # replaces, and moves to the end
    assert net.got(bob) == [msg("/fader", 0.5), msg("/text", "hello"), msg("/fader", 0.25)]
    assert net.got(ana) == []  # not back to the sender
    assert state_told(net, "cy") == [
        ("/oscrouter/state/begin", [2]),
        ("/text", ["hello"]),
        ("/fader", [0.25]),
        ("/oscrouter/state/end", []),
    ]


def test_followers_hear_changes_wrapped_and_clears_and_plain_members_no_clear() -> None:
    net = Net()
    ana, bob, cy = net.join("ana"), net.join("bob"), net.join("cy")
    for member in (ana, bob, cy):
        net.got(member)
    net.send(bob, msg("/oscrouter/state/follow", 1))
    net.send(ana, msg("/oscrouter/state", "/mute", 1))
    net.send(ana, msg("/oscrouter/state/clear", "/mute"))
    assert net.got(bob) == [
        msg("/oscrouter/state", "/mute", 1),
        msg("/oscrouter/state/clear", "/mute"),
    ]
    assert net.got(cy) == [msg("/mute", 1)]
    net.send(bob, msg("/oscrouter/state"))  # the whole state again, wrapped for a follower
    assert net.got_messages(bob) == [("/oscrouter/state/begin", [0]), ("/oscrouter/state/end", [])]
    net.send(ana, msg("/oscrouter/state/clear", "/never/set"))  # not an error
    assert net.got(ana) == []
    net.send(bob, msg("/oscrouter/state/follow", 0))
    net.send(ana, msg("/oscrouter/state", "/mute", 0))
    assert net.got(bob) == [msg("/mute", 0)]


def test_a_set_past_the_bounds_is_neither_kept_nor_sent() -> None:
    net = Net(Limits(max_state_addresses=2, max_state_bytes=1000))
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana), net.got(bob)
    net.send(ana, msg("/oscrouter/state", "/a", 1))
    net.send(ana, msg("/oscrouter/state", "/b", 2))
    net.send(ana, msg("/oscrouter/state", "/c", 3))  # a third address
    assert error_of(net, ana) == "state_full"
    net.send(ana, msg("/oscrouter/state", "/a", "x" * 1000))  # too many bytes
    assert error_of(net, ana) == "state_full"
    net.send(ana, msg("/oscrouter/state", "/a", 4))  # replacing within the bounds is fine
    assert net.got(bob) == [msg("/a", 1), msg("/b", 2), msg("/a", 4)]
    assert [a for a, _ in state_told(net, "cy")] == [
        "/oscrouter/state/begin",
        "/b",
        "/a",
        "/oscrouter/state/end",
    ]


def test_the_routers_own_addresses_are_bad_state_and_the_member_plays_on() -> None:
    net = Net()
    ana = net.join("ana")
    net.send(ana, msg("/oscrouter/state", "/oscrouter/userlist", "eve"))
    assert error_of(net, ana) == "bad_state"
    assert ana.accepts_input
