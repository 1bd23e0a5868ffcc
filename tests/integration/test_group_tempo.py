"""A group's tempo and `/oscrouter/info` (docs/protocol.md §11, §12) on the real router process,
over raw sockets and WebSocket: one process, and `--workers 2`, where a group's timeline lives
with its worker and a connection that asks `/oscrouter/info` first still ends in its group's
worker. Drives core/tempo.py and osc/tempo.py end to end."""

from __future__ import annotations

import time

import pytest

from support.client import Client, Received, WsClient
from support.osc import msg, register
from support.process import RouterProcess, TwoWorkers
from tcposcrouter.osc.framing import Framing
from tcposcrouter.osc.tempo import read_tempo_message

pytestmark = pytest.mark.timeout(120)


def tempo_of(packet: Received) -> tuple[float, float, float, int, int]:
    """(T0 in Unix seconds, B0, bpm, Q, playing) of an `/oscrouter/tempo ,tddii`."""
    tempo = read_tempo_message(packet.raw)
    assert tempo is not None, packet.raw
    return tempo


def joined(client: Client, user: str, group: str) -> list[tuple[float, float, float, int, int]]:
    """Register `user`; the tempos it is told after its first user list (one, or two while a
    change is pending)."""
    client.send(register(user, group))
    client.recv_until("/oscrouter/userlist")
    told = [tempo_of(client.recv())]
    told.extend(tempo_of(p) for p in client.drain(0.2) if p.address == "/oscrouter/tempo")
    return told


def beat_of(line: tuple[float, float, float, int, int], at: float) -> float:
    t0, beat, bpm, _, _ = line
    return beat + (at - t0) * bpm / 60.0


def test_one_tempo_for_the_group_a_change_at_the_next_bar_reaches_everyone_before_it(
    router: RouterProcess, group: str
) -> None:
    ana = Client(router.osc10_port)
    (first,) = joined(ana, "ana", group)
    assert first[1:] == (0.0, 120.0, 4, 1)
    assert abs(first[0] - time.time()) < 0.5  # the group began as ana registered
    bob = Client(router.osc11_port, Framing.SLIP)
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc")
    assert joined(bob, "bob", group) == [first]
    assert joined(web, "web", group) == [first]
    for member in (ana, bob, web):
        member.drain(0.2)  # the others' user lists

    # Bob, over SLIP with Pd's floats, moves the group to 96 bpm at the next bar.
    next_bar = (beat_of(first, time.time()) // 4 + 1) * 4
    bob.send(msg("/oscrouter/tempo/set", 96.0, float(next_bar)))
    for member in (ana, bob, web):
        change = tempo_of(member.recv_until("/oscrouter/tempo"))
        assert time.time() < change[0]  # before the change point
        assert change[1:] == (next_bar, 96.0, 4, 1)
        # The new line passes through the old one at the change (to within the microseconds
        # the wall clock's offset from the router's moved between the two lines).
        assert abs(beat_of(first, change[0]) - next_bar) < 1e-4

    # A late joiner hears the line in force, then the pending change; so does an asker.
    cy = Client(router.osc10_port)
    told = joined(cy, "cy", group)
    assert told == [first, change]
    ana.send(msg("/oscrouter/tempo"))
    assert [tempo_of(p) for p in ana.drain(0.3) if p.address == "/oscrouter/tempo"] == told

    # A stop at a later beat replaces the pending change: at most one waits, and it is built
    # on the line in force (120 bpm).
    web.send(msg("/oscrouter/tempo/play", 0, float(next_bar + 8)))
    stop = tempo_of(ana.recv_until("/oscrouter/tempo"))
    assert stop[1:] == (next_bar + 8, 120.0, 4, 0)
    ana.send(msg("/oscrouter/tempo/set", 1200.0))
    assert ana.recv_until("/oscrouter/error").args[0] == "bad_tempo"
    for member in (bob, web, cy):
        heard = [p.address for p in member.drain(0.3) if p.address != "/oscrouter/userlist"]
        assert heard == ["/oscrouter/tempo"]  # the stop; not the refused set


def test_info_before_the_register_and_the_register_on_the_same_connection(
    router: RouterProcess, group: str
) -> None:
    client = Client(router.osc10_port)
    client.send(msg("/oscrouter/info"))
    answer = client.recv()
    assert answer.address == "/oscrouter/info"
    assert answer.args[1:] == ["time", "tempo", "state", "session"]
    client.send(register("ana", group))
    assert client.recv().address == "/oscrouter/register/ana/1"


def test_with_two_workers_the_group_keeps_one_tempo_and_info_first_still_finds_the_group(
    two_workers: TwoWorkers, group: str
) -> None:
    # Eight connections: the kernel spreads them over both workers; each asks what the router
    # supports before it registers, as a client that falls back would.
    members = []
    for _ in range(8):
        member = Client(two_workers.osc)
        member.send(msg("/oscrouter/info"))
        assert member.recv().args[1:] == ["time", "tempo", "state", "session"]
        members.append(member)
    lines = [joined(member, f"m{index}", group) for index, member in enumerate(members)]
    assert all(told == lines[0] for told in lines)  # one timeline: the owner's
    time.sleep(0.3)
    for member in members:
        lists = [p.args for p in member.drain(0.2) if p.address == "/oscrouter/userlist"]
        if lists:
            assert sorted(map(str, lists[-1])) == [f"m{i}" for i in range(8)]  # all in one place
    members[3].send(msg("/oscrouter/tempo/set", 140.0))
    changes = [tempo_of(member.recv_until("/oscrouter/tempo")) for member in members]
    assert len(set(changes)) == 1 and changes[0][2] == 140.0
