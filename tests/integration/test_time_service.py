"""The time service (docs/protocol.md §9) of the real router process, over TCP and WebSocket."""

from __future__ import annotations

import struct
import time

from support.client import Client, WsClient
from support.process import RouterProcess
from tcposcrouter.osc.messages import TIME, time_tag

NTP_UNIX_OFFSET = 2_208_988_800


def unix(tag: bytes) -> float:
    seconds, fraction = struct.unpack(">II", tag)
    return float(seconds - NTP_UNIX_OFFSET + fraction / 2**32)


def ask(client: Client) -> tuple[float, float, float, float]:
    """One exchange: (t0 sent, t1 received by the router, t2 sent by it, t3 received back)."""
    t0 = time.time()
    client.send(TIME + b",t\x00\x00" + time_tag(t0))
    reply = client.recv().raw
    t3 = time.time()
    assert reply[:24] == TIME + b",ttt\x00\x00\x00\x00"
    assert abs(unix(reply[24:32]) - t0) < 1e-6  # the client's own tag, echoed
    return t0, unix(reply[32:40]), unix(reply[40:48]), t3


def test_the_router_tells_its_time_over_tcp_and_websocket(
    router: RouterProcess, group: str
) -> None:
    tcp = Client(router.osc10_port).join("tcp", group)
    ws = WsClient(f"ws://127.0.0.1:{router.http_port}/osc")
    ws.join("ws", group)
    tcp.recv_until("/oscrouter/userlist")
    for client in (tcp, ws):
        samples = [ask(client) for _ in range(20)]
        # On loopback the router's clock is this machine's: NTP's offset is within a millisecond.
        offsets = sorted(((t1 - t0) + (t2 - t3)) / 2 for t0, t1, t2, t3 in samples)
        assert abs(offsets[len(offsets) // 2]) < 0.001
        for t0, t1, t2, t3 in samples:
            assert t0 - 0.001 <= t1 <= t2 <= t3 + 0.001
    tcp.expect_nothing()  # nobody else heard any of it
    ws.expect_nothing()
