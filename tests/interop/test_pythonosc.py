"""python-osc's own TCP client (pythonosc.tcp_client) in both of its modes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY as PY_IMMEDIATELY
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.tcp_client import SimpleTCPClient

from support.process import RouterProcess


@pytest.fixture
def clients(router: RouterProcess) -> Iterator[tuple[SimpleTCPClient, SimpleTCPClient]]:
    # mode "1.0" on the length-prefix port, mode "1.1" (python-osc's default) on the SLIP port
    old = SimpleTCPClient("127.0.0.1", router.osc10_port, mode="1.0", timeout=5)
    new = SimpleTCPClient("127.0.0.1", router.osc11_port, mode="1.1", timeout=5)
    yield old, new
    old.close()
    new.close()


def messages(client: SimpleTCPClient, count: int) -> list[OscMessage]:
    received: list[OscMessage] = []
    while len(received) < count:
        packets = client.receive(timeout=3)
        assert packets, f"got {len(received)} of {count} packets"
        received.extend(OscMessage(p) for p in packets if p)
    return received


def test_python_osc_clients_join_and_exchange(
    clients: tuple[SimpleTCPClient, SimpleTCPClient], group: str
) -> None:
    old, new = clients
    old.send_message("/oscrouter/register", ["old", "pw", group, "gpw", 11])
    replies = messages(old, 6)
    assert [(m.address, list(m.params)) for m in replies[:3]] == [
        ("/oscrouter/register/old/11", []),
        ("/oscrouter/register", ["old", 11]),
        ("/oscrouter/userlist", ["old"]),
    ]
    # The group's tempo, which python-osc reads: T0 as a time tag, then B0 bpm Q playing.
    assert replies[3].address == "/oscrouter/tempo"
    assert list(replies[3].params)[1:] == [0.0, 120.0, 4, 1]
    new.send_message("/oscrouter/register", ["new", "pw", group, "gpw", 22])
    replies = messages(new, 6)
    assert [m.address for m in replies] == [
        "/oscrouter/register/new/22",
        "/oscrouter/register",
        "/oscrouter/userlist",
        "/oscrouter/tempo",
        "/oscrouter/state/begin",
        "/oscrouter/state/end",
    ]
    assert list(replies[2].params) == ["old", "new"]
    assert list(messages(old, 1)[0].params) == ["old", "new"]

    new.send_message("/from/new", [1, 2.5, "three", b"four"])
    (got,) = messages(old, 1)
    assert (got.address, list(got.params)) == ("/from/new", [1, 2.5, "three", b"four"])

    builder = OscBundleBuilder(PY_IMMEDIATELY)
    for i in range(3):
        note = OscMessageBuilder("/bundled")
        note.add_arg(i)
        builder.add_content(note.build())
    sent = builder.build()
    old.send(sent)
    packets = new.receive(timeout=3)
    assert packets == [sent.dgram]

    for i in range(100):
        old.send_message("/seq", i)
    seq = messages(new, 100)
    assert [m.params[0] for m in seq] == list(range(100))
