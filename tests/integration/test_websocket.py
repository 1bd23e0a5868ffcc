"""OSC over WebSocket (/osc) against the real router process, beside TCP clients of both
framings: the same protocol, byte for byte (docs/protocol.md §1 and §8).

Drives server/http/websocket.py."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from support.client import Client, WsClient
from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message, register
from support.process import RouterProcess
from support.wsraw import client_frame, close_frame, raw_websocket
from tcposcrouter.osc.framing import Framing, frame

# One message with every OSC 1.0 and 1.1 type tag the contract forwards.
EVERY_TYPE = raw_message(
    "/every/type",
    ",ifsbhtdScrmTFNI",
    struct.pack(">i", -7)
    + struct.pack(">f", 0.25)
    + osc_string("ünïcode ♫")
    + struct.pack(">i", 3)
    + b"\x01\x02\x03\x00"
    + struct.pack(">q", -(2**40))
    + struct.pack(">Q", 0x83AA7E80_00000001)
    + struct.pack(">d", 1e-300)
    + osc_string("symbol")
    + struct.pack(">i", ord("c"))
    + b"\xff\x80\x00\x7f"
    + b"\x00\x90\x3c\x7f",
)
NESTED = bundle(IMMEDIATELY, msg("/a", 1), bundle(b"\x00\x00\x00\x01\x00\x00\x00\x00", EVERY_TYPE))


def ws_url(router: RouterProcess, query: str = "") -> str:
    return f"ws://127.0.0.1:{router.http_port}/osc" + (f"?{query}" if query else "")


def get(router: RouterProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(router.http + path, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metrics(router: RouterProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(router, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_websocket_and_both_tcp_framings_hear_each_other_byte_exact(
    router: RouterProcess, group: str
) -> None:
    ws = WsClient(ws_url(router)).join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    slip = Client(router.osc11_port, Framing.SLIP).join("slip", group)
    assert ws.recv_until("/oscrouter/userlist").args == ["web", "lp"]
    assert ws.recv_until("/oscrouter/userlist").args == ["web", "lp", "slip"]
    assert lp.recv_until("/oscrouter/userlist").args == ["web", "lp", "slip"]

    clients = {"web": ws, "lp": lp, "slip": slip}
    for name, sender in clients.items():
        sender.send(EVERY_TYPE)
        sender.send(NESTED)
        sender.send(msg(f"/from/{name}", 1, 2.5, "end"))
        for other_name, other in clients.items():
            if other is sender:
                continue
            got = [other.recv().raw for _ in range(3)]
            assert got == [EVERY_TYPE, NESTED, msg(f"/from/{name}", 1, 2.5, "end")], other_name
    for client in clients.values():
        client.expect_nothing()


def test_private_messages_cross_transports(router: RouterProcess, group: str) -> None:
    ws = WsClient(ws_url(router)).join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    ws.recv_until("/oscrouter/userlist")
    ws.send(msg("/oscrouter/private", "lp", "/only/you", 42))
    assert lp.recv().raw == msg("/oscrouter/private", "web", "/only/you", 42)
    lp.send(msg("/oscrouter/private", "web", "/and/back", "x"))
    assert ws.recv().raw == msg("/oscrouter/private", "lp", "/and/back", "x")


def test_register_from_the_url(router: RouterProcess, group: str) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    query = f"user=strudel&password=s3cret-pw&group={group}&group_password=gpw"
    ws = WsClient(ws_url(router, query))
    # The same replies as after a register message (randomId 0: the URL has none).
    assert ws.recv().address == "/oscrouter/register/strudel/0"
    second = ws.recv()
    assert (second.address, second.args) == ("/oscrouter/register", ["strudel", 0])
    assert ws.recv().args == ["lp", "strudel"]
    assert lp.recv_until("/oscrouter/userlist").args == ["lp", "strudel"]
    ws.send(msg("/s", "bd"))
    assert lp.recv().raw == msg("/s", "bd")

    wrong = WsClient(ws_url(router, f"user=strudel&password=nope&group={group}&group_password=gpw"))
    refused = wrong.wait_closed()
    assert [p.address for p in refused] == ["/oscrouter/error"]
    assert refused[0].args[0] == "auth_failed"

    time.sleep(0.2)
    log = router.log()
    assert f"register strudel@{group}" in log
    assert "s3cret-pw" not in log and "password=" not in log and "?user" not in log


def test_text_and_invalid_messages_get_error_replies(router: RouterProcess, group: str) -> None:
    ws = WsClient(ws_url(router))
    ws.join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    ws.recv_until("/oscrouter/userlist")
    ws.send_text("/hello 1 2 3")
    error = ws.recv()
    assert (error.address, error.args[0]) == ("/oscrouter/error", "packet_invalid")
    assert "text message" in str(error.args[1])
    ws.send(b"not osc at all")
    assert ws.recv().args[0] == "packet_invalid"
    ws.send(b"")
    assert ws.recv().args[0] == "packet_invalid"
    # Nothing of that reached the group, and the connection still works.
    ws.send(msg("/still/here"))
    assert lp.recv().raw == msg("/still/here")


def test_text_before_register_is_refused_and_closed(router: RouterProcess) -> None:
    ws = WsClient(ws_url(router))
    ws.send_text('{"register": true}')
    replies = ws.wait_closed()
    assert [(r.address, r.args[0]) for r in replies] == [("/oscrouter/error", "packet_invalid")]


def test_a_broken_frame_closes_with_protocol_error(router: RouterProcess, group: str) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    sock = raw_websocket(router)
    # RSV2 set without an extension that defines it: RFC 6455 §5.2 says fail the connection.
    sock.sendall(client_frame(register("raw", group), reserved=2))
    assert close_frame(sock)[0] == 1002
    lp.expect_nothing()
    sock.close()


def test_packet_size_limit(start_router: Callable[..., RouterProcess], group: str) -> None:
    router = start_router("--max-packet-size", "4096")
    ws = WsClient(ws_url(router))
    ws.join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    ws.recv_until("/oscrouter/userlist")
    largest = raw_message("/big", ",b", struct.pack(">i", 4080) + bytes(4080))
    assert len(largest) == 4096
    ws.send(largest)
    assert lp.recv().raw == largest
    ws.send(raw_message("/big", ",b", struct.pack(">i", 4084) + bytes(4084)))
    ws.wait_closed()
    assert ws.close_code == 1009  # message too big (RFC 6455 §7.4.1)
    assert lp.recv_until("/oscrouter/userlist").args == ["lp"]  # lp itself stays
    other = WsClient(ws_url(router)).join("web2", group)
    lp.recv_until("/oscrouter/userlist")
    lp.send(msg("/after"))
    assert other.recv().raw == msg("/after")
    assert metrics(router)[("tcposcrouter_errors_total", (("code", "packet_too_large"),))] == 1


def test_a_websocket_reader_that_stops_is_reset_without_slowing_the_others(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--max-output-buffer", "262144", "--no-rate-limit")
    stalled = raw_websocket(router, receive_buffer=4096)
    stalled.sendall(client_frame(register("stalled", group)))
    reader = WsClient(ws_url(router)).join("reader", group)
    sender = Client(router.osc10_port).join("sender", group)
    reader.recv_until("/oscrouter/userlist")
    time.sleep(0.2)
    reader.drain()
    payload = osc_string("x" * 1000)
    received: list[bytes] = []
    sent = 0
    done = threading.Event()

    def read_all() -> None:
        quiet_since = time.monotonic()
        while not (done.is_set() and len(received) >= sent):
            try:
                packet = reader.recv(timeout=0.2).raw
            except AssertionError:  # nothing for a moment: all read, or stuck
                if reader.closed or time.monotonic() - quiet_since > 10:
                    return
                continue
            quiet_since = time.monotonic()
            if b"/flood" in packet:  # not the user list that says the stalled one left
                received.append(packet)

    thread = threading.Thread(target=read_all)
    thread.start()
    # Half a megabyte at a time, until the router resets the stalled one: how much the kernel
    # takes into its send buffer first (up to 4 MB by default) is its own affair.
    deadline = time.monotonic() + 20
    while metrics(router).get(("tcposcrouter_slow_consumer_resets_total", ()), 0) < 1:
        assert time.monotonic() < deadline, "the stalled WebSocket was never reset"
        for _ in range(500):
            sender.send(raw_message("/flood", ",is", struct.pack(">i", sent) + payload))
            sent += 1
        while len(received) < sent - 200 and time.monotonic() < deadline:
            time.sleep(0.01)  # the reader keeps up: only the stalled one falls behind
    done.set()
    thread.join(30)
    assert len(received) == sent
    seqs = [struct.unpack(">i", packet[12:16])[0] for packet in received]
    assert seqs == list(range(sent))
    assert "slow_consumer" in router.log()
    stalled.close()


def test_metrics_count_what_happened(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router()
    ws = WsClient(ws_url(router)).join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    slip = Client(router.osc11_port, Framing.SLIP).join("slip", group)
    ws.recv_until("/oscrouter/userlist")
    before = metrics(router)
    for _ in range(10):
        ws.send(msg("/n", 1))
    for _ in range(10):
        lp.recv()
        slip.recv()
    bad = Client(router.osc10_port)
    bad.send(register("lp", group, password="wrong"))
    bad.wait_closed()
    lp.send(b"garbage!")
    lp.recv_until("/oscrouter/error")
    after = metrics(router)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert (
        after[("tcposcrouter_connections", (("framing", "websocket"), ("transport", "websocket")))]
        == 1
    )
    assert (
        after[("tcposcrouter_connections", (("framing", "length-prefix"), ("transport", "tcp")))]
        == 1
    )
    assert after[("tcposcrouter_connections", (("framing", "slip"), ("transport", "tcp")))] == 1
    assert delta("tcposcrouter_packets_in_total") == 12  # 10 notes, the bad register, garbage
    assert delta("tcposcrouter_deliveries_total") == 10 * 2 + 2  # notes to two, two errors
    assert delta("tcposcrouter_refusals_total", code="auth_failed") == 1
    assert delta("tcposcrouter_errors_total", code="packet_invalid") == 1
    assert delta("tcposcrouter_drops_total", cause="packet_invalid") == 1
    assert delta("tcposcrouter_connections_opened_total") == 1
    assert after[("tcposcrouter_groups", ())] == 1
    assert after[("tcposcrouter_users", ())] == 3
    assert after[("tcposcrouter_registrations_total", ())] == 3


def test_healthz_says_503_while_shutting_down(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--no-rate-limit", "--max-output-buffer", str(64 << 20))
    assert get(router, "/healthz") == (200, "ok\n")
    # A member that does not read, with megabytes queued for it beyond what the kernel holds:
    # the shutdown waits its grace period for them, long enough to ask meanwhile.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", router.osc10_port))
    try:
        stalled.sendall(frame(register("stalled", group), Framing.LENGTH_PREFIX))
        sender = Client(router.osc10_port).join("sender", group)
        chunk = raw_message("/big", ",b", struct.pack(">i", 100_000) + bytes(100_000))
        for _ in range(100):
            sender.send(chunk)
        time.sleep(0.5)
        router.process.send_signal(15)
        deadline = time.monotonic() + 4
        statuses = set()
        while time.monotonic() < deadline and router.process.poll() is None:
            try:
                statuses.add(get(router, "/healthz")[0])
            except OSError:
                break
            if 503 in statuses:
                break
            time.sleep(0.01)
        assert 503 in statuses
        assert router.process.wait(15) == 0
    finally:
        stalled.close()


def test_dashboard_live_views_by_access(router: RouterProcess, group: str) -> None:
    Client(router.osc10_port).join("ana", group, group_password="band-secret")
    url = f"ws://127.0.0.1:{router.http_port}/live"

    def view_after(asked: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
        with connect(url, open_timeout=5) as live:
            live.send(json.dumps(asked))
            access = json.loads(live.recv(timeout=5))
            while True:
                view = json.loads(live.recv(timeout=5))
                if view["type"] == "view":
                    return access, view

    access, public = view_after({})
    assert access["access"] == "public"
    assert public["group_pages"] == [] and group not in json.dumps(public)
    assert int(str(public["users"])) >= 1

    access, admin = view_after({"token": router.admin_token})
    assert access["access"] == "admin"
    pages = {p["name"]: p for p in admin["group_pages"]}  # type: ignore[attr-defined]
    assert [u["name"] for u in pages[group]["users"]] == ["ana"]
    connection = pages[group]["users"][0]["connections"][0]
    assert connection["transport"] == "tcp" and connection["peer"].startswith("127.0.0.1:")
    assert isinstance(connection["rtt_ms"], float)

    access, member = view_after({"group": group, "password": "band-secret"})
    assert access["access"] == "member"
    assert [p["name"] for p in member["group_pages"]] == [group]  # type: ignore[attr-defined]
    assert "peer" not in json.dumps(member)

    access, _ = view_after({"group": group, "password": "wrong"})
    assert access["access"] == "public" and access["error"] == "wrong group name or password"
    access, _ = view_after({"token": "wrong"})
    assert access["access"] == "public" and access["error"] == "wrong admin token"


def test_a_trusted_proxy_names_the_client(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("-v")
    ws = WsClient(ws_url(router), additional_headers={"X-Forwarded-For": "198.51.100.7"})
    ws.join("behind", group)
    untrusted = start_router("-v", "--trusted-proxy", "192.0.2.1")
    forged = WsClient(ws_url(untrusted), additional_headers={"X-Forwarded-For": "198.51.100.8"})
    forged.join("forger", group)
    time.sleep(0.2)
    assert "connect [198.51.100.7 via 127.0.0.1:" in router.log()
    assert "198.51.100.8" not in untrusted.log()


@pytest.mark.parametrize("path", ["/", "/client/", "/client/vendor/osc-browser.min.js"])
def test_pages_are_served(router: RouterProcess, path: str) -> None:
    status, body = get(router, path)
    assert status == 200 and len(body) > 500


def test_a_websocket_flood_is_paced_not_dropped(router: RouterProcess, group: str) -> None:
    """Over its rate budget a WebSocket sender is read more slowly; everything arrives."""
    ws = WsClient(ws_url(router))
    ws.join("flood", group)
    lp = Client(router.osc10_port).join("lp", group)
    ws.recv_until("/oscrouter/userlist")
    count = 15_000  # beyond the default burst of 10,000 packets
    started = time.monotonic()
    for seq in range(count):
        ws.send(raw_message("/f", ",i", struct.pack(">i", seq)))
    seqs = [struct.unpack(">i", lp.recv(timeout=10).raw[8:12])[0] for _ in range(count)]
    elapsed = time.monotonic() - started
    assert seqs == list(range(count))
    assert elapsed > 0.5  # the 5,000 beyond the burst waited for the budget (1 s at 5,000/s)
    notices = [p for p in ws.drain(0.5) if p.address == "/oscrouter/error"]
    assert [n.args[0] for n in notices] == ["rate_limited"]


def test_an_http_connection_that_asks_nothing_is_closed(
    start_router: Callable[..., RouterProcess],
) -> None:
    router = start_router("--register-timeout", "1")
    listener = WsClient(ws_url(router))
    listener.join("listener", "g")
    silent = socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=10)
    started = time.monotonic()
    assert silent.recv(1) == b""  # closed by the router
    assert time.monotonic() - started < 5
    silent.close()
    # A registered WebSocket that only listens is not an idle HTTP connection: it stays.
    time.sleep(1.5)
    Client(router.osc10_port).join("player", "g").send(msg("/late"))
    assert listener.recv_until("/late").raw == msg("/late")


def test_dashboards_from_one_address_are_limited(router: RouterProcess) -> None:
    url = f"ws://127.0.0.1:{router.http_port}/live"
    with contextlib.ExitStack() as stack:
        for _ in range(50):
            stack.enter_context(connect(url, open_timeout=5))
        with pytest.raises(InvalidStatus, match="503"), connect(url, open_timeout=5):
            pass
        # Another address still gets one.
        sock = socket.create_connection(
            ("127.0.0.1", router.http_port or 0), timeout=5, source_address=("127.0.0.2", 0)
        )
        with connect(url, sock=sock, open_timeout=5) as other:
            other.send("{}")
            assert json.loads(other.recv(timeout=5))["access"] == "public"
