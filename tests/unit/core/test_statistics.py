"""`Hub.statistics()` after a scripted sequence of events: every counter, exactly."""

from __future__ import annotations

from support.net import LP, SLIP, Net
from support.osc import msg, register
from tcposcrouter.limits import Limits
from tcposcrouter.osc.framing import frame


def test_statistics_after_a_scripted_evening() -> None:
    net = Net(Limits(rate_limit_packets=5, rate_limit_bytes=0))
    assert net.hub.statistics().connections == 0
    ana = net.join("ana")  # length prefix
    bob = net.join("bob", framing=SLIP)
    web = net.join("web", websocket=True)
    stranger = net.connect(framing=None)  # never sends a byte
    intruder = net.connect()
    net.send(intruder, register("eve", group_password="wrong"))  # auth_failed, closed
    for s in (ana, bob, web):
        net.got(s)

    stats = net.hub.statistics()
    assert stats.connections == 5 and stats.connections_opened == 5
    assert stats.connections_by_framing == {
        "length-prefix": 2,
        "slip": 1,
        "websocket": 1,
        "unknown": 1,
    }
    assert stats.registrations == 3 and stats.refusals == {"auth_failed": 1}
    assert stats.groups == 1 and stats.users == 3

    net.send(ana, msg("/note", 60), msg("/note", 62))  # 2 packets to 2 receivers each
    net.send(ana, b"/bad")  # dropped, ana told
    # The burst is 10 packets, and bob's register took one of them: the flood of 20 passes,
    # then bob's reading pauses.
    net.send(bob, *(msg("/flood", i) for i in range(20)))
    net.hub.errors.slow_consumer(web, 3_000_000, net.now)
    net.leave(intruder)
    net.leave(stranger)
    net.collect()

    stats = net.hub.statistics()
    # The intruder and the stranger are gone; the reset WebSocket connection is not yet.
    assert stats.connections_by_framing == {"length-prefix": 1, "slip": 1, "websocket": 1}
    assert stats.connections == 3
    assert stats.packets_in == 4 + 2 + 1 + 20  # registers, notes, the bad one, the flood
    assert stats.drops == {"packet_invalid": 1}
    assert stats.errors == {
        "auth_failed": 1,
        "packet_invalid": 1,
        "rate_limited": 1,  # one notice per episode
        "slow_consumer": 1,
    }
    assert stats.rate_limit_pauses == 1 and stats.password_checks == 4
    assert stats.deliveries >= 2 * 2 + 20 * 2
    assert stats.slow_consumer_resets == 1
    assert stats.connections == 3 and stats.connections_closed == 2  # web is reset, not gone yet
    assert stats.users == 2  # web left its group when it was reset
    bytes_written = sum(len(w) for sink in net.sinks.values() for w in sink.writes)
    assert stats.bytes_out == bytes_written and stats.writes == sum(
        len(sink.writes) for sink in net.sinks.values()
    )
    sent = [register(u) for u in ("ana", "bob")] + [msg("/note", 60), msg("/note", 62), b"/bad"]
    assert stats.bytes_in >= sum(len(frame(p, LP)) for p in sent)
