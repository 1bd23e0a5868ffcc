"""Hostile and broken clients against the real router process.

One test per case. Each checks the documented reply and action, then a health check: two fresh
clients in one group still exchange a message within 1 s. The module shares one router and
records its resident memory before and after all the cases.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import struct
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from support.client import Client, Received
from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message, register
from support.process import RouterProcess, rss_kib, start_router_process
from tcposcrouter.osc.framing import Framing, frame_length_prefix, frame_slip

LP, SLIP = Framing.LENGTH_PREFIX, Framing.SLIP
_sources = itertools.count(10)
_rss_start: list[int] = []

FLAGS = (
    "--register-timeout", "1",
    "--idle-timeout", "3",
    "--login-failures", "3",
    "--max-connections-per-address", "8",
    "--rate-limit-packets", "200",
    "--max-packet-size", "65536",
)  # fmt: skip


@pytest.fixture(scope="module")
def hostile_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    router = start_router_process(tmp_path_factory.mktemp("hostile"), *FLAGS)
    yield router
    end = rss_kib(router.process.pid)
    print(f"\nrouter RSS: {_rss_start[0]} KiB before the hostile cases, {end} KiB after")
    assert end - _rss_start[0] < 50 * 1024, "the router's memory grew by 50 MB or more"
    assert router.stop() == 0


@pytest.fixture
def router(hostile_router: RouterProcess) -> Iterator[RouterProcess]:
    if not _rss_start:
        healthy(hostile_router)  # warm up before the first reading
        _rss_start.append(rss_kib(hostile_router.process.pid))
    yield hostile_router
    healthy(hostile_router)


def source() -> str:
    """A loopback address no other test uses: each test is a host of its own."""
    n = next(_sources)
    return f"127.0.{n // 250}.{n % 250 + 2}"


def client(router: RouterProcess, framing: Framing = LP, src: str | None = None) -> Client:
    port = router.osc10_port if framing is LP else router.osc11_port
    return Client(port, framing, source=src or source())


def healthy(router: RouterProcess) -> None:
    assert router.process.poll() is None, "the router died"
    group = f"health-{next(_sources)}"
    a = client(router).join("a", group)
    b = client(router, SLIP).join("b", group)
    a.drain(0.05)
    started = time.monotonic()
    a.send(msg("/health", 1))
    assert b.recv(timeout=1).raw == msg("/health", 1)
    assert time.monotonic() - started < 1
    a.close()
    b.close()


def refused(c: Client, code: str) -> None:
    """The router answers `code`, then closes the connection."""
    replies = c.wait_closed(timeout=3)
    assert [(r.address, r.args[0]) for r in replies] == [("/oscrouter/error", code)]


def answered(c: Client, code: str) -> None:
    """The router answers `code` and keeps the connection."""
    reply = c.recv_until("/oscrouter/error")
    assert reply.args[0] == code
    assert not c.closed


def member(router: RouterProcess, group: str, name: str, framing: Framing = LP) -> Client:
    return client(router, framing).join(name, group)


# -- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, -1, -(2**31)])
def test_zero_and_negative_lengths(router: RouterProcess, group: str, length: int) -> None:
    # Registered first: a stream whose first byte is not 0x00 is SLIP (auto-detection).
    c = member(router, group, "a")
    c.send_raw(struct.pack(">i", length) + b"/x\x00\x00")
    refused(c, "framing_error")


def test_zero_length_as_first_bytes(router: RouterProcess) -> None:
    c = client(router)
    c.send_raw(b"\x00\x00\x00\x00")
    refused(c, "framing_error")


def test_huge_length_is_refused_before_anything_is_buffered(
    router: RouterProcess, group: str
) -> None:
    stranger = client(router)
    stranger.send_raw(struct.pack(">i", 0x00FFFFFF))  # 16 MiB: the most a first 0x00 allows
    refused(stranger, "packet_too_large")
    a = member(router, group, "a")
    a.send_raw(struct.pack(">i", 2**31 - 1))  # the 2 GiB the original would try to allocate
    refused(a, "packet_too_large")


def test_truncated_length_then_disconnect(router: RouterProcess) -> None:
    before = closed_connections(router)
    c = client(router)
    c.send_raw(b"\x00\x00")
    c.close()
    # The router forgets the connection and its half a length prefix.
    assert wait_for(lambda: closed_connections(router) == before + 1)


def test_truncated_packet_then_disconnect(router: RouterProcess, group: str) -> None:
    watcher = member(router, group, "watcher")
    c = member(router, group, "ana")
    watcher.drain(0.1)
    c.send_raw(struct.pack(">i", 100) + b"/half")
    c.close()
    left_alone(watcher, "ana")


@pytest.mark.parametrize("framing", [LP, SLIP])
def test_garbage(router: RouterProcess, framing: Framing) -> None:
    c = client(router, framing)
    garbage = bytes(range(1, 256)) * 4
    # The first byte decides the framing: END for SLIP, 0x00 for a length prefix.
    c.send_raw((b"\xc0" if framing is SLIP else b"\x00") + garbage)
    replies = c.wait_closed(timeout=3)
    assert replies and replies[0].address == "/oscrouter/error"


def test_slip_invalid_escape_loses_one_frame(router: RouterProcess, group: str) -> None:
    a, b = member(router, group, "a", SLIP), member(router, group, "b")
    a.drain(0.05)
    b.drain(0.05)
    a.send_raw(b"\xc0/x\xdb\x01\x00\xc0" + frame_slip(msg("/after", 1)))
    answered(a, "packet_invalid")
    assert b.recv().raw == msg("/after", 1)


def test_slip_without_end_from_a_stranger(router: RouterProcess) -> None:
    c = client(router, SLIP)
    with contextlib.suppress(OSError):  # the router may close while we are still sending
        c.send_raw(b"\xc0")
        for _ in range(40):  # 40 KiB and no END: over twice the 16 KiB a stranger may send
            c.send_raw(b"a" * 1024)
    refused(c, "packet_too_large")


def test_slip_frame_over_the_limit_from_a_member(router: RouterProcess, group: str) -> None:
    a = member(router, group, "a", SLIP)
    a.drain(0.05)
    with contextlib.suppress(OSError):  # the router may close while we are still sending
        a.send_raw(b"\xc0" + b"a" * 200_000)
    refused(a, "packet_too_large")


def test_reset_mid_frame(router: RouterProcess, group: str) -> None:
    watcher = member(router, group, "watcher")
    a = member(router, group, "a")
    watcher.drain(0.1)
    a.send_raw(struct.pack(">i", 1000) + b"/x")
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()  # RST, not FIN
    left_alone(watcher, "a")


def left_alone(watcher: Client, gone: str) -> None:
    """`gone` left the watcher's group, and none of its half-sent bytes reached the watcher:
    only the new user list did."""
    reply = watcher.recv()
    assert (reply.address, reply.args) == ("/oscrouter/userlist", ["watcher"]), reply
    assert watcher.drain(0.3) == []
    assert not watcher.closed


def closed_connections(router: RouterProcess) -> float:
    with urllib.request.urlopen(f"{router.http}/metrics", timeout=2) as response:
        text = response.read().decode()
    (value,) = re.findall(r"^tcposcrouter_connections_closed_total (\S+)$", text, re.MULTILINE)
    return float(value)


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- packets -----------------------------------------------------------------------------------

BAD_PACKETS = {
    "no NUL after the address": b"/abcdefg",
    "no slash": osc_string("abc") + osc_string(","),
    "bad type tag string": osc_string("/x") + b"iii\x00",
    "unknown type tag": raw_message("/x", ",Q", b"\x00" * 4),
    "arguments past the end": raw_message("/x", ",ii", b"\x00" * 4),
    "string past the end": raw_message("/x", ",s", b"abcd"),
    "10,000 tags, 9,999 arguments": raw_message("/x", "," + "i" * 10_000, b"\x00" * 39_996),
    "bundle element of size 0": b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", 0),
    "bundle element size past the end": b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", 400),
    "bundle element size negative": b"#bundle\x00" + IMMEDIATELY + struct.pack(">i", -8),
}


def nested(depth: int) -> bytes:
    packet = msg("/deep")
    for _ in range(depth):
        packet = bundle(IMMEDIATELY, packet)
    return packet


BAD_PACKETS["bundle nested too deep"] = nested(9)  # the limit is 8 levels


@pytest.mark.parametrize("name", sorted(BAD_PACKETS))
def test_invalid_packet_from_a_member(router: RouterProcess, group: str, name: str) -> None:
    a, b = member(router, group, "a"), member(router, group, "b")
    a.drain(0.05)
    b.drain(0.05)
    a.send(BAD_PACKETS[name])
    a.send(msg("/after", 1))
    answered(a, "packet_invalid")
    assert b.recv().raw == msg("/after", 1)
    b.expect_nothing(0.1)


def test_ten_thousand_arguments_are_forwarded(router: RouterProcess, group: str) -> None:
    a, b = member(router, group, "a"), member(router, group, "b")
    a.drain(0.05)
    packet = raw_message("/many", "," + "i" * 10_000, b"\x00\x00\x00\x07" * 10_000)
    a.send(packet)
    assert b.recv().raw == packet


# -- register ----------------------------------------------------------------------------------

BAD_REGISTERS = {
    "wrong types": msg("/oscrouter/register", 1, 2, 3, 4),
    "too few arguments": msg("/oscrouter/register", "ana", "pw", "band"),
    "no arguments": msg("/oscrouter/register"),
    "empty name": msg("/oscrouter/register", "", "pw", "band", "gpw"),
    "huge name": msg("/oscrouter/register", "n" * 5000, "pw", "band", "gpw"),
    "control character": msg("/oscrouter/register", "an\x07a", "pw", "band", "gpw"),
    "string randomId": msg("/oscrouter/register", "ana", "pw", "band", "gpw", "id"),
}


@pytest.mark.parametrize("name", sorted(BAD_REGISTERS))
def test_malformed_register(router: RouterProcess, name: str) -> None:
    c = client(router)
    c.send(BAD_REGISTERS[name])
    refused(c, "bad_register")


def test_first_packet_is_not_a_register(router: RouterProcess) -> None:
    c = client(router)
    c.send(msg("/note", 1))
    refused(c, "not_registered")


def test_second_register(router: RouterProcess, group: str) -> None:
    a = member(router, group, "a")
    a.send(register("b", group))
    answered(a, "already_registered")


def test_unknown_router_command(router: RouterProcess, group: str) -> None:
    a = member(router, group, "a")
    a.send(msg("/oscrouter/shutdown"))
    answered(a, "unknown_command")


# -- limits --------------------------------------------------------------------------------------


def test_register_timeout(router: RouterProcess) -> None:
    silent = client(router)
    started = time.monotonic()
    assert silent.wait_closed(timeout=5) == []  # never spoke: closed without a word
    assert 0.9 < time.monotonic() - started < 4
    half = client(router)
    half.send_raw(b"\x00\x00")
    refused(half, "register_timeout")


def test_idle_timeout_updates_the_user_list(router: RouterProcess, group: str) -> None:
    a = member(router, group, "a")
    b = member(router, group, "b")
    a.drain(0.05)
    for _ in range(5):  # b pings like the SuperCollider client; a says nothing
        time.sleep(1)
        b.send(msg("/oscrouter/ping", "b"))
    refused(a, "idle_timeout")
    assert b.recv_until("/oscrouter/userlist").args == ["b"]


def test_too_many_connections_from_one_address(router: RouterProcess, group: str) -> None:
    src = source()
    members = [client(router, src=src).join(f"u{i}", group) for i in range(8)]
    extra = client(router, src=src)
    extra.send(register("late", group))
    refused(extra, "server_full")
    client(router).join("elsewhere", group)  # another address still gets in
    assert len(members) == 8


def test_failed_logins_are_throttled(router: RouterProcess, group: str) -> None:
    member(router, group, "ana")
    src = source()
    for _ in range(3):
        guess = client(router, src=src)
        guess.send(register("ana", group, password="guess"))
        refused(guess, "auth_failed")
    locked = client(router, src=src)
    locked.send(register("ana", group))  # even the right password
    refused(locked, "login_throttled")
    time.sleep(1.1)
    client(router, src=src).join("ana", group)


def test_a_flood_is_slowed_down_and_nothing_is_lost(router: RouterProcess, group: str) -> None:
    a, b = member(router, group, "a"), member(router, group, "b")
    a.drain(0.05)
    # 1,000 packets in one go, at 200 packets/s with a burst of 400: the router routes the
    # whole read, then reads nothing more from `a` until its budget has paid the debt back.
    a.send_raw(b"".join(frame_length_prefix(msg("/flood", i)) for i in range(1000)))
    answered(a, "rate_limited")
    sent_after = time.monotonic()
    a.send(msg("/after", 1))
    got: list[Received] = []
    while not got or got[-1].address != "/after":
        got.append(b.recv(timeout=30))
    waited = time.monotonic() - sent_after
    assert [p.args[0] for p in got[:-1]] == list(range(1000))  # every one, in order
    assert waited > 1.5  # (1000 - 400) / 200 = 3 s of debt, less what passed meanwhile
    a.expect_nothing(0.1)  # one notice for the whole episode
    assert not a.closed and not b.closed
