"""The group tempo and state across the nodes of a cluster on a real redis-server (docs/cluster.md,
docs/protocol.md §11, §13): one timeline changed atomically and told to members on every node,
one state that a joiner on a node without members has in full, changes kept in their member's
order, nodes that change the same thing at once ending alike, and the state gone with the group.

Drives cluster/ensemble.py, the ensemble parts of cluster/traffic.py, cluster/registers.py and
cluster/store.py, and core/elsewhere.py's copies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from support.client import Client, Received
from support.osc import msg, register
from support.process import RouterProcess
from support.redis import RedisServer
from tcposcrouter.osc.framing import Framing
from tcposcrouter.osc.tempo import read_tempo_message

pytestmark = pytest.mark.timeout(180)

Line = tuple[float, float, float, int, int]


def node(
    start_router: Callable[..., RouterProcess], redis: RedisServer, name: str, *flags: str
) -> RouterProcess:
    return start_router("--cluster", redis.url, "--node-id", name, *flags)


def tempo_of(packet: Received) -> Line:
    tempo = read_tempo_message(packet.raw)
    assert tempo is not None, packet.raw
    return tempo


def same_line(a: Line, b: Line) -> bool:
    """Two lines told by two nodes: the same numbers, T0 within the time tags' rounding."""
    return abs(a[0] - b[0]) < 1e-6 and a[1:] == b[1:]


def joining(client: Client, user: str, group: str) -> tuple[list[Line], list[bytes]]:
    """Register `user`: the tempo lines it is told, and the state between begin and end."""
    client.send(register(user, group))
    client.recv_until("/oscrouter/userlist")
    lines = []
    while (packet := client.recv()).address == "/oscrouter/tempo":
        lines.append(tempo_of(packet))
    assert packet.address == "/oscrouter/state/begin", packet.address
    state = []
    while (packet := client.recv()).address != "/oscrouter/state/end":
        state.append(packet.raw)
    return lines, state


def test_one_tempo_and_one_state_across_two_nodes(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    for router in (n1, n2):
        asker = Client(router.osc10_port)
        asker.send(msg("/oscrouter/info"))
        assert asker.recv().args[1:] == ["time", "tempo", "state", "session"]
        asker.close()

    ana = Client(n1.osc10_port)
    ana_lines, ana_state = joining(ana, "ana", group)
    assert len(ana_lines) == 1 and ana_lines[0][2:] == (120.0, 4, 1) and ana_state == []
    text = "the shared text " * 500
    ana.send(msg("/oscrouter/state", "/doc", text))
    ana.send(msg("/oscrouter/state", "/fader", 0.5))
    ana.send(msg("/oscrouter/state", "/fader", 0.75))
    ana.send(msg("/oscrouter/state", "/gone", 1))
    ana.send(msg("/oscrouter/state/clear", "/gone"))
    ana.send(msg("/oscrouter/tempo/set", 130.0))
    changed = tempo_of(ana.recv_until("/oscrouter/tempo"))
    assert changed[2] == 130.0

    # A late joiner on the node where nobody of the group is: the store's tempo and state.
    bob = Client(n2.osc11_port, Framing.SLIP)
    bob_lines, bob_state = joining(bob, "bob", group)
    assert len(bob_lines) == 1 and same_line(bob_lines[0], changed)
    assert bob_state == [msg("/doc", text), msg("/fader", 0.75)]
    ana.drain(0.3)

    # A state change keeps its place among its member's packets on the other node, wrapped
    # for a follower there, plain for the others.
    carl = Client(n2.osc10_port)
    joining(carl, "carl", group)
    bob.send(msg("/oscrouter/state/follow", 1))
    time.sleep(0.2)
    ana.drain(0.2)
    bob.drain(0.2)
    for number in range(50):
        ana.send(msg("/note", number))
        ana.send(msg("/oscrouter/state", "/fader", float(number)))
    heard_by_bob = [p for p in bob.drain(1.0) if p.address in ("/note", "/oscrouter/state")]
    heard_by_carl = [p.raw for p in carl.drain(0.5) if p.address in ("/note", "/fader")]
    expected_plain = []
    expected_wrapped = []
    for number in range(50):
        expected_plain += [msg("/note", number), msg("/fader", float(number))]
        expected_wrapped += [
            msg("/note", number),
            msg("/oscrouter/state", "/fader", float(number)),
        ]
    assert [p.raw for p in heard_by_bob] == expected_wrapped
    assert heard_by_carl == expected_plain

    # A tempo change on the second node reaches every member, on both nodes, the same.
    bob.send(msg("/oscrouter/tempo/set", 90.0, 8.0))
    told = [tempo_of(c.recv_until("/oscrouter/tempo")) for c in (ana, bob, carl)]
    assert all(same_line(line, told[0]) for line in told)
    assert told[0][1:3] == (8.0, 90.0)  # at beat 8, 90 bpm: the pending change

    # A joiner on either node while the change is pending: the line in force, then it.
    for router, name in ((n1, "dan"), (n2, "eve")):
        lines, state = joining(Client(router.osc10_port), name, group)
        assert len(lines) == 2 and same_line(lines[1], told[0])
        assert state == [msg("/doc", text), msg("/fader", 49.0)]


def test_nodes_that_change_one_thing_at_once_end_alike(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    ana, carl = Client(n1.osc10_port), Client(n1.osc10_port)
    bob, dan = Client(n2.osc10_port), Client(n2.osc10_port)
    for client, name in ((ana, "ana"), (bob, "bob"), (carl, "carl"), (dan, "dan")):
        joining(client, name, group)
    for follower in (carl, dan):
        follower.send(msg("/oscrouter/state/follow", 1))
    time.sleep(0.3)
    for client in (ana, bob, carl, dan):
        client.drain(0.2)

    # ana (n1) and bob (n2) change the tempo and one address at the same moments, 20 times
    # each; carl (n1) and dan (n2) listen.
    rounds = 20
    start = threading.Barrier(2)

    def play(client: Client, name: str, bpm: float) -> None:
        for number in range(rounds):
            start.wait()
            client.send(msg("/oscrouter/tempo/set", bpm + number))
            client.send(msg("/oscrouter/state", "/scene", name, number))

    threads = [
        threading.Thread(target=play, args=(ana, "ana", 100.0)),
        threading.Thread(target=play, args=(bob, "bob", 200.0)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)

    def heard(client: Client) -> tuple[list[Line], bytes]:
        """The tempo lines a listener was told, and the last /scene it heard."""
        packets = client.drain(0.3)
        lines = [tempo_of(p) for p in packets if p.address == "/oscrouter/tempo"]
        scenes = [p.raw for p in packets if p.address == "/oscrouter/state"]
        assert all(p.address != "/oscrouter/error" for p in packets)
        return lines, scenes[-1]

    for changer in (ana, bob):
        refused = [p.args for p in changer.drain(0.3) if p.address == "/oscrouter/error"]
        assert refused == []
    carl_lines, carl_scene = heard(carl)
    dan_lines, dan_scene = heard(dan)
    # Every change made on the line before it, all 40 told on both nodes, in one order.
    assert len(carl_lines) == len(dan_lines) == 2 * rounds
    assert all(same_line(a, b) for a, b in zip(carl_lines, dan_lines, strict=True))
    assert sorted(line[2] for line in carl_lines) == sorted(
        [100.0 + n for n in range(rounds)] + [200.0 + n for n in range(rounds)]
    )
    # The state: the store's order decides, and both nodes end with its last change.
    assert carl_scene == dan_scene
    address, who, number = Received(carl_scene).args
    assert isinstance(address, str) and isinstance(who, str) and isinstance(number, int)
    scene = msg(address, who, number)  # as its member sent it
    for router, name in ((n1, "eve"), (n2, "fay")):
        lines, state = joining(Client(router.osc10_port), name, group)
        assert same_line(lines[-1], carl_lines[-1])
        assert [raw for raw in state if raw.startswith(b"/scene")] == [scene]


def test_bounds_hold_across_nodes_and_the_state_goes_with_the_group(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    flags = ("--max-state-addresses", "3")
    n1, n2 = node(start_router, redis, "n1", *flags), node(start_router, redis, "n2", *flags)
    ana, bob = Client(n1.osc10_port), Client(n2.osc10_port)
    joining(ana, "ana", group)
    joining(bob, "bob", group)
    for address in ("/a", "/b", "/c"):
        ana.send(msg("/oscrouter/state", address, 1))
    assert [p.address for p in bob.drain(0.5) if p.address.startswith("/")][-3:] == [
        "/a",
        "/b",
        "/c",
    ]
    bob.send(msg("/oscrouter/state", "/d", 1))
    error = bob.recv_until("/oscrouter/error")
    assert error.args[0] == "state_full"
    assert "/d" not in [p.address for p in ana.drain(0.3)]
    bob.send(msg("/oscrouter/state", "/a", 2))  # a kept address may change
    assert ana.recv_until("/a").args == [2]

    # Everyone leaves, on both nodes: a group made again later starts empty, at 120 bpm.
    ana.send(msg("/oscrouter/tempo/set", 150.0))
    bob.recv_until("/oscrouter/tempo")
    ana.close()
    bob.close()
    time.sleep(0.5)
    lines, state = joining(Client(n2.osc10_port), "carl", group)
    assert state == [] and lines[0][2] == 120.0


def test_a_node_back_on_a_redis_that_lost_everything_gives_the_group_its_tempo_and_state(
    start_router: Callable[..., RouterProcess], redis: RedisServer, group: str
) -> None:
    n1, n2 = node(start_router, redis, "n1"), node(start_router, redis, "n2")
    ana = Client(n1.osc10_port)
    joining(ana, "ana", group)
    ana.send(msg("/oscrouter/state", "/doc", "verse"))
    ana.send(msg("/oscrouter/tempo/set", 133.0))
    line = tempo_of(ana.recv_until("/oscrouter/tempo"))
    # Redis stops; meanwhile ana's changes are her node's alone; Redis comes back empty.
    redis.stop()
    time.sleep(0.5)
    ana.send(msg("/oscrouter/state", "/chorus", 2))
    redis.start()
    deadline = time.monotonic() + 20
    while n1.console().count("cluster: node n1 on Redis") < 2:
        assert time.monotonic() < deadline, "n1 never came back to Redis"
        time.sleep(0.2)
    time.sleep(0.5)
    # A joiner on the other node has what ana's node wrote back.
    lines, state = joining(Client(n2.osc10_port), "bob", group)
    assert same_line(lines[-1], line)
    assert state == [msg("/doc", "verse"), msg("/chorus", 2)]
