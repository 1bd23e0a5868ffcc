"""The real router process over real sockets: docs/protocol.md end to end.

Drives cli/router.py and server/listeners.py."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from support.client import Client
from support.osc import IMMEDIATELY, bundle, msg, osc_string, raw_message, register
from support.process import RouterProcess, ipv6_loopback_works
from tcposcrouter.osc.framing import Framing, frame_length_prefix, frame_slip

LP = Framing.LENGTH_PREFIX
SLIP = Framing.SLIP


def connect(router: RouterProcess, framing: Framing = LP, port: int | None = None) -> Client:
    if port is None:
        port = router.osc10_port if framing is LP else router.osc11_port
    return Client(port, framing)


def members(router: RouterProcess, group: str, *names: str, framing: Framing = LP) -> list[Client]:
    port = router.osc10_port  # framing is auto-detected on every port
    clients = [connect(router, framing, port).join(name, group) for name in names]
    for client in clients:
        client.drain(0.1)
    return clients


@pytest.mark.parametrize("framing", [LP, SLIP])
def test_register_replies(router: RouterProcess, group: str, framing: Framing) -> None:
    client = connect(router, framing)
    client.send(register("ana", group, random_id=777))
    replies = [client.recv() for _ in range(3)]
    assert [(r.address, r.args) for r in replies] == [
        ("/oscrouter/register/ana/777", []),
        ("/oscrouter/register", ["ana", 777]),
        ("/oscrouter/userlist", ["ana"]),
    ]


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"group_password": "nope"}, "auth_failed"),
        ({"password": "nope"}, "auth_failed"),
    ],
)
def test_failed_login_gets_an_error_then_is_closed(
    router: RouterProcess, group: str, kw: dict[str, str], code: str
) -> None:
    (ana,) = members(router, group, "ana")
    intruder = connect(router)
    intruder.send(register("ana", group, **kw))  # type: ignore[arg-type]
    (reply,) = intruder.wait_closed()
    assert (reply.address, reply.args[0]) == ("/oscrouter/error", code)
    ana.expect_nothing()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (msg("/oscrouter/register", "ana"), "bad_register"),
        (msg("/note", 60), "not_registered"),
        (b"/x\x00\x00,z\x00\x00", "packet_invalid"),
    ],
)
def test_bad_first_packet_gets_an_error_then_is_closed(
    router: RouterProcess, first: bytes, code: str
) -> None:
    client = connect(router)
    client.send(first)
    (reply,) = client.wait_closed()
    assert (reply.address, reply.args[0]) == ("/oscrouter/error", code)


def test_broadcast_to_every_other_user_without_echo(router: RouterProcess, group: str) -> None:
    clients = members(router, group, *(f"u{i}" for i in range(6)))
    note = msg("/note", 60, 0.5, "piano")
    clients[0].send(note)
    for client in clients[1:]:
        assert client.recv().raw == note
    clients[0].expect_nothing()


def test_private_message(router: RouterProcess, group: str) -> None:
    ana, bob, carl = members(router, group, "ana", "bob", "carl")
    ana.send(msg("/oscrouter/private", "bob", "/secret", 42))
    received = bob.recv()
    assert (received.address, received.args) == ("/oscrouter/private", ["ana", "/secret", 42])
    carl.expect_nothing()
    ana.send(msg("/oscrouter/private", "nobody", "/x"))
    assert ana.recv().args[0] == "unknown_user"


def test_user_list_on_every_join_and_leave(router: RouterProcess, group: str) -> None:
    ana = connect(router).join("ana", group)
    bob = connect(router).join("bob", group)
    assert ana.recv().args == ["ana", "bob"]
    bob2 = connect(router).join("bob", group)
    assert ana.recv().args == ["ana", "bob"]
    assert bob.recv().args == ["ana", "bob"]
    bob.close()
    assert ana.recv().args == ["ana", "bob"]  # bob is still there on his other connection
    bob2.close()
    assert ana.recv().args == ["ana"]


def test_two_connections_of_one_user(router: RouterProcess, group: str) -> None:
    ana, ana2, bob = members(router, group, "ana", "ana", "bob")
    bob.send(msg("/to/ana", 1))
    assert ana.recv().raw == ana2.recv().raw == msg("/to/ana", 1)
    ana.send(msg("/from/ana", 2))
    assert bob.recv().raw == msg("/from/ana", 2)
    ana2.expect_nothing()  # never back to the same user


def test_returning_user_while_the_old_connection_is_open(router: RouterProcess, group: str) -> None:
    old, bob = members(router, group, "ana", "bob")
    new = connect(router)
    new.send(register("ana", group, random_id=5))
    assert new.recv().address == "/oscrouter/register/ana/5"
    new.drain()
    bob.send(msg("/hello"))
    assert new.recv().raw == msg("/hello")
    del old


@pytest.mark.parametrize(("sender", "receiver"), [(LP, SLIP), (SLIP, LP)])
def test_cross_framing(
    router: RouterProcess, group: str, sender: Framing, receiver: Framing
) -> None:
    a = connect(router, sender).join("a", group)
    b = connect(router, receiver).join("b", group)
    a.drain()
    packet = msg("/bytes", b"\xc0\xdb\xc0 escaped in SLIP")
    a.send(packet)
    assert b.recv().raw == packet


def test_framing_is_auto_detected_on_both_ports(router: RouterProcess, group: str) -> None:
    on_wrong_port = [
        connect(router, SLIP, port=router.osc10_port).join("slip-on-10", group),
        connect(router, LP, port=router.osc11_port).join("lp-on-11", group),
    ]
    on_wrong_port[0].drain()
    on_wrong_port[1].send(msg("/x", 1))
    assert on_wrong_port[0].recv().raw == msg("/x", 1)


def test_slip_output_is_double_end(router: RouterProcess, group: str) -> None:
    a = connect(router, SLIP).join("a", group)
    b = connect(router).join("b", group)
    a.drain()
    b.send(msg("/x"))
    a.sock.settimeout(2)
    assert a.sock.recv(100) == frame_slip(msg("/x"))
    assert frame_slip(msg("/x")).startswith(b"\xc0/") and frame_slip(msg("/x")).endswith(
        b"\x00\xc0"
    )


def test_bundles_arrive_intact_with_time_tags(router: RouterProcess, group: str) -> None:
    a, b = members(router, group, "a", "b")
    packet = bundle(
        struct.pack(">II", 3_900_000_000, 123456),
        msg("/chord", 60, 64, 67),
        bundle(IMMEDIATELY, msg("/inner", 1.5)),
    )
    a.send(packet)
    assert b.recv().raw == packet


EVERY_TYPE = raw_message(
    "/every/type",
    ",ifsbhtdScrmTFNI[is]",
    struct.pack(">i", -7)
    + struct.pack(">f", 0.1)
    + osc_string("text")
    + struct.pack(">i", 3)
    + b"abc\x00"
    + struct.pack(">q", -(2**62))
    + struct.pack(">II", 1, 2)
    + struct.pack(">d", 0.1)
    + osc_string("symbol")
    + struct.pack(">i", ord("c"))
    + b"\x01\x02\x03\x04"
    + b"\x00\x90\x40\x7f"
    + struct.pack(">i", 9)
    + osc_string("in array"),
)


@pytest.mark.parametrize("framing", [LP, SLIP])
def test_every_type_is_forwarded_byte_exact(
    router: RouterProcess, group: str, framing: Framing
) -> None:
    a = connect(router, framing).join("a", group)
    b = connect(router, framing).join("b", group)
    a.drain()
    a.send(EVERY_TYPE)
    assert b.recv().raw == EVERY_TYPE


def test_far_future_bundle_does_not_delay_anything(router: RouterProcess, group: str) -> None:
    a, b = members(router, group, "a", "b")
    c, d = members(router, group + "-other", "c", "d")
    future = bundle(struct.pack(">II", 0xFFFFFFFF, 0), msg("/later", 1))
    a.send(future)
    c.send(msg("/now", 2))
    a.send(msg("/right/after", 3))
    started = time.monotonic()
    assert d.recv(timeout=1).raw == msg("/now", 2)
    assert [b.recv(timeout=1).raw, b.recv(timeout=1).raw] == [future, msg("/right/after", 3)]
    assert time.monotonic() - started < 1


def test_order_and_no_loss_under_a_burst(router: RouterProcess, group: str) -> None:
    a, b, c = members(router, group, "a", "b", "c")
    packets = [msg("/seq", i) for i in range(3000)]
    a.send_raw(b"".join(frame_length_prefix(p) for p in packets))
    for receiver in (b, c):
        assert [receiver.recv().raw for _ in packets] == packets


def test_error_replies_keep_the_connection(router: RouterProcess, group: str) -> None:
    a, b = members(router, group, "a", "b")
    a.send(msg("/oscrouter/userlist", "forged"))
    assert a.recv().args[0] == "unknown_command"
    a.send(b"/x\x00\x00,i\x00\x00")
    assert a.recv().args[0] == "packet_invalid"
    a.send(register("a", group))
    assert a.recv().args[0] == "already_registered"
    a.send(msg("/fine", 1))
    assert b.recv().raw == msg("/fine", 1)


def test_oversized_packet_closes_only_that_connection(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--max-packet-size", "1024")
    a, b = members(router, group, "a", "b")
    a.send(msg("/big", "x" * 2000))
    (reply,) = a.wait_closed()
    assert reply.args[0] == "packet_too_large"
    c = connect(router).join("c", group)
    c.send(msg("/small", "x" * 900))
    assert b.recv_until("/small").raw == msg("/small", "x" * 900)


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback(router: RouterProcess, group: str) -> None:
    a = Client(router.osc10_port, LP, host="::1").join("a", group)
    b = Client(router.osc11_port, SLIP, host="::1").join("b", group)
    a.drain()
    a.send(msg("/v6", 6))
    assert b.recv().raw == msg("/v6", 6)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signal_flushes_and_exits_cleanly(
    start_router: Callable[..., RouterProcess], group: str, signum: signal.Signals
) -> None:
    router = start_router()
    a, b = members(router, group, "a", "b")
    packets = [msg("/last/words", i, "x" * 200) for i in range(2000)]
    a.send_raw(b"".join(frame_length_prefix(p) for p in packets))
    assert b.recv().raw == packets[0]  # the router has started on the burst
    assert router.stop(signum) == 0
    rest = b.wait_closed(timeout=10)
    assert [p.raw for p in rest if p.address == "/last/words"] == packets[1:]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", router.osc10_port), timeout=1)


def test_log_lines_name_peers_users_and_groups_but_never_passwords(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router()
    a = connect(router).join("ana", group, password="pw-ana-123", group_password="pw-grp-456")
    bad = connect(router)
    bad.send(register("ana", group, password="pw-guess-789", group_password="pw-grp-456"))
    bad.wait_closed()
    a.send(msg("/contents/are/private", "lyrics"))
    a.close()
    time.sleep(0.3)
    assert router.stop() == 0
    log = router.log()
    assert f"register ana@{group}" in log
    assert "register refused" in log and "auth_failed" in log
    assert f"leave ana@{group}" in log
    assert "connect [127.0.0.1:" in log
    for secret in ("pw-ana-123", "pw-grp-456", "pw-guess-789", "contents", "lyrics"):
        assert secret not in log


def test_command_line() -> None:
    run = [sys.executable, "-m", "tcposcrouter"]
    usage = subprocess.run([*run, "-h"], capture_output=True, text=True, check=True).stdout
    for flag in (
        "--osc-port",
        "--osc11-port",
        "--no-osc10",
        "--no-osc11",
        "--log-dir",
        "--host",
        "--max-packet-size",
        "--verbose",
        "--quiet",
        "--version",
        "--max-connections",
        "--max-connections-per-address",
        "--register-timeout",
        "--idle-timeout",
        "--max-output-buffer",
        "--rate-limit-packets",
        "--rate-limit-bytes",
        "--no-rate-limit",
        "--max-users-per-group",
        "--max-groups",
        "--login-failures",
        "--http-port",
        "--no-http",
        "--admin-token",
        "--trusted-proxy",
        "--config",
        "--check-config",
    ):
        assert flag in usage
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("tcposcrouter ")
    both = subprocess.run(
        [*run, "--disable-osc10", "--disable-osc11", "--no-http"], capture_output=True, text=True
    )
    assert both.returncode == 2 and "nothing to listen on" in both.stderr


def test_one_port_disabled(start_router: Callable[..., RouterProcess], group: str) -> None:
    router = start_router("--disable-osc11")
    a, b = members(router, group, "a", "b", framing=SLIP)  # SLIP still works on the 1.0 port
    a.send(msg("/x"))
    assert b.recv().raw == msg("/x")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", router.osc11_port), timeout=1)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tcposcrouter",
                "--host",
                "127.0.0.1",
                "--osc-port",
                port,
                "--disable-osc11",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert proc.returncode == 1
    assert (
        f"cannot listen: port {port} (the OSC 1.0 port) is in use: another router or program "
        "holds it" in proc.stderr
    )
    assert "with --osc-port PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_console_names_the_browser_client_and_the_dashboard(
    start_router: Callable[..., RouterProcess],
) -> None:
    router = start_router()
    deadline = time.monotonic() + 5
    while "dashboard:" not in router.console():
        assert time.monotonic() < deadline, router.console()
        time.sleep(0.05)
    console = router.console()
    site = f"http://127.0.0.1:{router.http_port}"
    assert f"browser client (join a group from any browser): {site}/client/" in console
    assert f"dashboard: {site}/ (with the admin token you set)" in console


def test_a_mistyped_flag_is_one_line_with_the_nearest_flag() -> None:
    run = [sys.executable, "-m", "tcposcrouter", "--max-conections", "5"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert proc.stderr == (
        "tcposcrouter: --max-conections: no such flag (did you mean --max-connections?); "
        "see tcposcrouter --help\n"
    )
