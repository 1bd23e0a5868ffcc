"""A group's state for late joiners (docs/protocol.md §13) on the real router process, over raw
sockets and WebSocket, in one process and with `--workers 2` (the state lives with the group's
worker). Drives core/state.py and osc/state.py end to end."""

from __future__ import annotations

import time

from support.client import Client, Received, WsClient
from support.osc import msg, register
from support.process import RouterProcess, TwoWorkers
from tcposcrouter.osc.framing import Framing


def told_on_joining(client: Client, user: str, group: str) -> list[Received]:
    """Register `user`; the state it is sent, from begin to end."""
    client.send(register(user, group))
    client.recv_until("/oscrouter/state/begin")
    told = []
    while (packet := client.recv()).address != "/oscrouter/state/end":
        told.append(packet)
    return told


def test_a_late_joiner_hears_the_state_before_any_live_message(
    router: RouterProcess, group: str
) -> None:
    ana = Client(router.osc10_port)
    assert told_on_joining(ana, "ana", group) == []
    bob = Client(router.osc11_port, Framing.SLIP)
    told_on_joining(bob, "bob", group)
    ana.drain(0.2)
    text = "the shared text " * 500  # 8 KB, as an editor's document
    ana.send(msg("/oscrouter/state", "/doc", text))
    ana.send(msg("/oscrouter/state", "/fader", 0.5))
    ana.send(msg("/oscrouter/state", "/fader", 0.75))
    got = [p for p in bob.drain(0.3) if not p.address.startswith("/oscrouter/")]
    assert [p.raw for p in got] == [msg("/doc", text), msg("/fader", 0.5), msg("/fader", 0.75)]

    # A late joiner, while ana keeps playing: the whole state first, then live traffic.
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc")
    ana.send(msg("/note", 60))
    told = told_on_joining(web, "web", group)
    assert [p.raw for p in told] == [msg("/doc", text), msg("/fader", 0.75)]
    ana.send(msg("/note", 62))
    live = [p.raw for p in web.drain(0.3) if p.address == "/note"]
    assert live == [msg("/note", 62)]

    # A follower hears changes wrapped; a clear reaches only followers.
    web.send(msg("/oscrouter/state/follow", 1))
    time.sleep(0.1)
    ana.send(msg("/oscrouter/state/clear", "/fader"))
    assert web.recv_until("/oscrouter/state/clear").raw == msg("/oscrouter/state/clear", "/fader")
    assert not [p for p in bob.drain(0.3) if p.address in ("/oscrouter/state/clear", "/fader")]
    ana.send(msg("/oscrouter/state", "/oscrouter/userlist", "eve"))
    assert ana.recv_until("/oscrouter/error").args[0] == "bad_state"


def test_with_two_workers_the_state_lives_with_the_group(
    two_workers: TwoWorkers, group: str
) -> None:
    members = [Client(two_workers.osc) for _ in range(4)]
    for index, member in enumerate(members):
        told_on_joining(member, f"m{index}", group)
    members[0].send(msg("/oscrouter/state", "/scene", 3))
    time.sleep(0.3)
    # Latecomers, spread by the kernel over both workers, all get it from the group's worker.
    for index in range(4, 8):
        told = told_on_joining(Client(two_workers.osc), f"m{index}", group)
        assert [p.raw for p in told] == [msg("/scene", 3)]
