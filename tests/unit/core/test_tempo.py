"""A group's tempo (core/tempo.py), driven through the pure hub: the timeline's arithmetic, a
change now and at a later beat, the one pending change, the transport, what a joiner and an
asker are told, and what is refused."""

from __future__ import annotations

import pytest

from support.net import Net, error_of
from support.osc import msg, register
from tcposcrouter.core.session import Session
from tcposcrouter.core.tempo import Line, Timeline
from tcposcrouter.errors import RemoteError
from tcposcrouter.osc.tempo import read_tempo_message

Tempo = tuple[float, float, float, int, int]  # T0 (router time), B0, bpm, Q, playing


def tempos(net: Net, session: Session) -> list[Tempo]:
    """The tempo messages `session` got since last asked (the test's wall clock is the hub's)."""
    return [tempo for packet in net.got(session) if (tempo := read_tempo_message(packet))]


def joined(net: Net, name: str) -> tuple[Session, list[Tempo]]:
    """`name` registers in the group "band": its connection and the tempos it was told."""
    session = net.connect()
    net.send(session, register(name))
    return session, tempos(net, session)


def test_a_line_gives_the_beat_at_a_time_and_the_time_of_a_beat() -> None:
    line = Line(t0=100.0, beat0=8.0, bpm=120.0, quantum=4, playing=1)
    assert line.beat_at(103.0) == 14.0
    assert line.time_at(16.0) == 104.0


def test_a_change_at_a_later_beat_passes_through_the_line_in_force() -> None:
    timeline = Timeline(0.0)  # beat 0 at time 0, 120 bpm
    new = timeline.set_tempo(1.0, 60.0, 8.0, None)  # at beat 8, which is at 4 s
    assert (new.t0, new.beat0, new.bpm) == (4.0, 8.0, 60.0)
    assert [line.bpm for line in timeline.lines(3.9)] == [120.0, 60.0]  # pending until then
    assert [line.bpm for line in timeline.lines(4.0)] == [60.0]
    assert timeline.lines(5.0)[0].beat_at(5.0) == 9.0  # one beat a second since beat 8


def test_a_beat_already_past_means_now_and_a_new_change_replaces_the_pending_one() -> None:
    timeline = Timeline(0.0)
    now = timeline.set_tempo(3.0, 90.0, 2.0, None)  # beat 2 was at 1 s
    assert (now.t0, now.beat0) == (3.0, 6.0)
    timeline.set_tempo(4.0, 100.0, 40.0, None)  # pending
    replaced = timeline.set_tempo(4.0, 110.0, 20.0, None)  # built on the line in force
    assert [line.bpm for line in timeline.lines(4.0)] == [90.0, 110.0]
    assert replaced.time_at(20.0) == pytest.approx(3.0 + (20.0 - 6.0) * 60 / 90)


@pytest.mark.parametrize(
    ("bpm", "at_beat", "quantum"),
    [
        (19.9, None, None),
        (1000.0, None, None),
        (float("nan"), None, None),
        (120.0, None, 0),
        (120.0, None, 3),  # a new bar length now
        (120.0, 9.0, 3),  # beat 9 is a multiple of 3 but in the past at 10 s (beat 20)
        (120.0, 25.0, 3),  # a future beat that does not start a bar of 3
    ],
)
def test_what_the_timeline_refuses(bpm: float, at_beat: float | None, quantum: int | None) -> None:
    timeline = Timeline(0.0)
    with pytest.raises(RemoteError) as refused:
        timeline.set_tempo(10.0, bpm, at_beat, quantum)
    assert refused.value.code == "bad_tempo"
    assert [line.bpm for line in timeline.lines(10.0)] == [120.0]  # nothing changed


def test_a_new_bar_length_at_a_future_bar() -> None:
    timeline = Timeline(0.0)
    line = timeline.set_tempo(10.0, 120.0, 24.0, 3)  # beat 20 now; 24 starts a bar of 3
    assert (line.quantum, line.beat0, line.t0) == (3, 24.0, 12.0)


def test_every_member_hears_a_change_and_a_joiner_gets_the_line_in_force_then_the_pending() -> None:
    net = Net()
    ana, (first,) = joined(net, "ana")
    assert first == (net.now, 0.0, 120.0, 4, 1)  # the group began when ana registered
    net.now += 0.5
    bob, told = joined(net, "bob")
    assert told == [first]  # bob joined the same timeline
    net.got(ana)
    net.now += 0.5  # beat 2
    net.send(ana, msg("/oscrouter/tempo/set", 90.0, 8.0))  # at beat 8: 3 s from now
    change = (net.now + 3.0, 8.0, 90.0, 4, 1)
    assert tempos(net, ana) == [change]  # the one who asked too
    assert tempos(net, bob) == [change]
    cy, told = joined(net, "cy")
    assert told == [first, change]
    net.send(cy, msg("/oscrouter/tempo"))
    assert tempos(net, cy) == [first, change]
    assert tempos(net, ana) == []  # an answer is the asker's alone
    net.now += 3.0
    net.send(cy, msg("/oscrouter/tempo"))
    assert tempos(net, cy) == [change]  # it is the line in force now


def test_the_transport_stops_at_a_beat_and_keeps_the_tempo() -> None:
    net = Net()
    ana = net.join("ana")
    tempos(net, ana)
    net.send(ana, msg("/oscrouter/tempo/play", 0, 4.0))
    assert tempos(net, ana) == [(net.now + 2.0, 4.0, 120.0, 4, 0)]


def test_a_refused_request_is_answered_and_changes_nothing() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.got(ana), net.got(bob)
    net.send(ana, msg("/oscrouter/tempo/set", 5000.0))
    assert error_of(net, ana) == "bad_tempo"
    assert net.got(bob) == []
    assert ana.accepts_input  # not fatal


def test_info_is_answered_before_the_register_and_the_register_follows() -> None:
    net = Net()
    stranger = net.connect()
    net.send(stranger, msg("/oscrouter/info"))
    [(address, [version, *features])] = net.got_messages(stranger)
    assert (address, features) == ("/oscrouter/info", ["time", "tempo", "state", "session"])
    assert isinstance(version, str) and version
    assert stranger.accepts_input
    net.send(stranger, msg("/oscrouter/register", "ana", "pw", "band", "gpw"))
    assert net.got_messages(stranger)[1] == ("/oscrouter/register", ["ana", 0])


def test_a_tempo_request_before_the_register_is_not_registered() -> None:
    net = Net()
    stranger = net.connect()
    net.send(stranger, msg("/oscrouter/tempo"))
    assert error_of(net, stranger) == "not_registered"
    assert not stranger.accepts_input


def test_a_member_that_asks_is_told_the_tempo_relative_as_floats() -> None:
    # Pd's [oscparse] reads neither a time tag nor a double: such a client asks for the line
    # as floats, relative to the moment it is sent.
    net = Net()
    ana, _ = joined(net, "ana")
    pd, _ = joined(net, "pd")
    net.got(ana)
    net.now += 1.0  # beat 2 at 120 bpm
    net.send(pd, msg("/oscrouter/tempo/relative", 1.0))
    assert net.got_messages(pd) == [("/oscrouter/tempo/relative", [2.0, 120.0, 4, 1, 0.0])]
    net.send(ana, msg("/oscrouter/tempo/set", 90.0, 8.0))  # beat 8: 3 s from now
    assert net.got_messages(pd) == [("/oscrouter/tempo/relative", [8.0, 90.0, 4, 1, 3.0])]
    assert tempos(net, ana) == [(net.now + 3.0, 8.0, 90.0, 4, 1)]  # the others as before
    net.now += 1.0
    net.send(pd, msg("/oscrouter/tempo"))  # the line in force now, then the change ahead
    assert net.got_messages(pd) == [
        ("/oscrouter/tempo/relative", [4.0, 120.0, 4, 1, 0.0]),
        ("/oscrouter/tempo/relative", [8.0, 90.0, 4, 1, 2.0]),
    ]
    net.send(pd, msg("/oscrouter/tempo/relative", 0))
    assert len(tempos(net, pd)) == 2  # time tags again
    net.send(pd, msg("/oscrouter/tempo/relative", 2))
    assert error_of(net, pd) == "bad_tempo"
