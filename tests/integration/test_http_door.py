"""The HTTP port's door against the real router (docs/operating.md, "The HTTP port on the
public internet"; docs/protocol.md §8, "Frames the router refuses"): request heads that never
end, idle crowds that would fill the port, and WebSocket frames no client library sends.

Drives server/http/door.py."""

from __future__ import annotations

import contextlib
import re
import socket
import time
import urllib.request
from collections.abc import Callable

import pytest

from support.client import Client, WsClient
from support.osc import msg, register
from support.process import RouterProcess
from support.wsraw import client_frame, close_frame, raw_websocket, upgrade_request


def healthz(router: RouterProcess, source: str = "") -> int:
    """/healthz's status, asked from `source` (one of 127.0.0.0/8)."""
    bind = (source, 0) if source else None
    with socket.create_connection(
        ("127.0.0.1", router.http_port or 0), timeout=5, source_address=bind
    ) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = sock.recv(64)
    return int(head.split()[1])


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """How long until the router closes `sock` (None: still open after `seconds`)."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            if not sock.recv(4096):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(4096) != b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


def idle(router: RouterProcess, source: str, count: int) -> list[socket.socket]:
    """`count` connections from `source` that begin a request head and never finish it."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(
            ("127.0.0.1", router.http_port or 0), timeout=5, source_address=(source, 0)
        )
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    return sockets


def ws_member(router: RouterProcess, user: str, group: str, source: str = "") -> socket.socket:
    """A member over a hand-made WebSocket, its register's replies read."""
    sock = raw_websocket(router, source=source)
    sock.sendall(client_frame(register(user, group)))
    time.sleep(0.2)
    return sock


def wait_for_userlist(client: Client, users: list[str]) -> None:
    deadline = time.monotonic() + 3
    while client.recv_until("/oscrouter/userlist", timeout=3).args != users:
        assert time.monotonic() < deadline, f"no user list {users}"


# -- request heads -----------------------------------------------------------------------------


@pytest.mark.parametrize("first_request_whole", [False, True])
def test_a_request_head_that_never_ends_is_closed(
    start_router: Callable[..., RouterProcess], first_request_whole: bool
) -> None:
    router = start_router("--register-timeout", "2")
    silent = socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5)
    dripping = socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5)
    if first_request_whole:
        dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert dripping.recv(4096).startswith(b"HTTP/1.1 200")
    dripping.sendall(b"GET / HTTP/1.1\r\n")
    start = time.monotonic()
    while time.monotonic() - start < 6 and still_open(dripping):
        dripping.sendall(b"X-Slow: 1\r\n")  # a header a second: never a whole head
        time.sleep(1.0)
    took = time.monotonic() - start
    assert took < 5.0, "a head dripped a line a second was never cut off"
    assert not still_open(dripping)
    assert closed_within(silent, 2.0) is not None, "a connection that says nothing stayed"
    assert healthz(router) == 200
    silent.close()
    dripping.close()


def test_a_head_over_64_kib_is_refused(router: RouterProcess) -> None:
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(20):
                sock.sendall(b"X-Many: " + b"a" * 4000 + b"\r\n")
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:60]
    assert healthz(router) == 200


# -- connection caps ---------------------------------------------------------------------------


def test_idle_connections_from_one_address_give_way_to_a_member_and_healthz(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--max-unregistered-per-address", "8")
    crowd = idle(router, "127.0.0.2", 8)
    time.sleep(2.5)  # older than the patience a classroom's burst is given
    player = ws_member(router, "player", group, source="127.0.0.2")
    assert healthz(router, "127.0.0.2") == 200
    lp = Client(router.osc10_port).join("lp", group)
    lp.send(msg("/note", 60))
    # The member hears it (its own register replies and user lists come first).
    player.settimeout(5)
    heard = b""
    while msg("/note", 60) not in heard:
        chunk = player.recv(65536)
        assert chunk, "the member was closed"
        heard += chunk
    closed = [sock for sock in crowd if not still_open(sock)]
    assert closed, "no idle connection gave way"
    assert closed == crowd[: len(closed)], "not the oldest gave way"
    crowd_then = idle(router, "127.0.0.2", 3)  # a burst within the patience all gets in
    assert all(still_open(sock) for sock in crowd_then)
    for sock in crowd + crowd_then + [player]:
        sock.close()


def test_a_full_http_port_still_lets_a_member_and_healthz_in(
    start_router: Callable[..., RouterProcess], group: str
) -> None:
    router = start_router("--max-connections", "40")
    crowd = idle(router, "127.0.0.3", 20) + idle(router, "127.0.0.4", 20)
    time.sleep(0.3)
    assert healthz(router, "127.0.0.5") == 200
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc").join("web", group)
    lp = Client(router.osc10_port).join("lp", group)
    web.recv_until("/oscrouter/userlist")
    lp.send(msg("/in", 1))
    assert web.recv().raw == msg("/in", 1)
    closed = [sock for sock in crowd if not still_open(sock)]
    assert closed and closed == crowd[: len(closed)], "the oldest idle connections give way"
    with urllib.request.urlopen(router.http + "/metrics", timeout=5) as page:
        text = page.read().decode()
    evicted = re.search(r"^tcposcrouter_http_evicted_total (\S+)$", text, re.MULTILINE)
    assert evicted is not None and float(evicted.group(1)) >= len(closed)
    for sock in crowd:
        sock.close()


# -- frames ------------------------------------------------------------------------------------

MALFORMED = {
    "unmasked": (client_frame(msg("/x"), masked=False), 1002),
    "reserved bits": (client_frame(msg("/x"), reserved=4), 1002),
    "unknown opcode": (client_frame(msg("/x"), opcode=3), 1002),
    "ping over 125 bytes": (client_frame(bytes(126), opcode=9), 1002),
    "fragmented ping": (client_frame(b"p", opcode=9, final=False), 1002),
    "length 2^62": (client_frame(b"", declared=1 << 62), 1009),
    "continuation with no message": (client_frame(msg("/x"), opcode=0), 1002),
    "message inside a message": (
        client_frame(b"\x00" * 4, final=False) + client_frame(msg("/x")),
        1002,
    ),
    "20,000 continuation frames": (
        client_frame(b"/x\x00\x00", final=False)
        + b"".join(client_frame(b"\x00", opcode=0, final=False) for _ in range(20_000)),
        1008,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_frame_ends_that_connection_within_a_second(
    router: RouterProcess, group: str, case: str
) -> None:
    frames, code = MALFORMED[case]
    lp = Client(router.osc10_port).join("lp", group)
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc").join("web", group)
    sock = ws_member(router, "raw", group)
    lp.recv_until("/oscrouter/userlist")
    start = time.monotonic()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(frames)  # may be closed before it has sent everything
    got_code, reason = close_frame(sock)
    took = time.monotonic() - start
    assert got_code == code, reason
    assert took < 1.0, f"closed after {took:.2f} s"
    # The group sees the member leave, and plays on.
    wait_for_userlist(lp, ["lp", "web"])
    lp.send(msg("/after"))
    assert web.recv_until("/after").raw == msg("/after")
    sock.close()


def test_what_came_before_a_refused_frame_is_delivered(router: RouterProcess, group: str) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    sock = ws_member(router, "raw", group)
    lp.recv_until("/oscrouter/userlist")
    good = [msg("/before", n) for n in range(3)]
    sock.sendall(b"".join(client_frame(p) for p in good) + client_frame(msg("/x"), masked=False))
    assert close_frame(sock)[0] == 1002
    assert [lp.recv_until("/before").raw for _ in good] == good
    sock.close()


def test_a_message_in_a_few_frames_is_one_packet(router: RouterProcess, group: str) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    sock = ws_member(router, "raw", group)
    lp.recv_until("/oscrouter/userlist")
    packet = msg("/pieces", "x" * 1000)
    pieces = [packet[i : i + 100] for i in range(0, len(packet), 100)]
    frames = client_frame(pieces[0], final=False)
    frames += b"".join(client_frame(p, opcode=0, final=False) for p in pieces[1:-1])
    frames += client_frame(b"ping", opcode=9)  # a control frame between the pieces is allowed
    frames += client_frame(pieces[-1], opcode=0)
    sock.sendall(frames)
    assert lp.recv().raw == packet
    sock.close()


def test_a_ping_flood_is_closed_and_a_keepalive_ping_is_answered(
    router: RouterProcess, group: str
) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    calm = ws_member(router, "calm", group)
    for n in range(10):
        calm.sendall(client_frame(b"alive %d" % n, opcode=9))
        time.sleep(0.25)
    pongs = b""
    calm.settimeout(2)
    while pongs.count(b"\x8a") < 10:  # a pong frame's first byte (FIN, opcode 10)
        chunk = calm.recv(65536)
        assert chunk, "a member pinging four times a second was closed"
        pongs += chunk
    flood = ws_member(router, "flood", group)
    lp.recv_until("/oscrouter/userlist")
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        flood.sendall(b"".join(client_frame(b"p", opcode=9) for _ in range(1000)))
    code, reason = close_frame(flood)
    assert code == 1008 and "pings" in reason
    wait_for_userlist(lp, ["lp", "calm"])
    calm.sendall(client_frame(msg("/still", 1)))
    assert lp.recv_until("/still").raw == msg("/still", 1)
    for sock in (calm, flood):
        sock.close()


def test_a_handshake_where_there_is_no_websocket_gets_its_404(router: RouterProcess) -> None:
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        sock.sendall(upgrade_request("/nothing-here"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 404")
    assert healthz(router) == 200


def test_frame_header_split_across_writes(router: RouterProcess, group: str) -> None:
    lp = Client(router.osc10_port).join("lp", group)
    sock = ws_member(router, "raw", group)
    lp.recv_until("/oscrouter/userlist")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    packet = msg("/slow", "y" * 300)  # a 16-bit length: a header of 8 bytes
    frame = client_frame(packet)
    for i in range(len(frame)):
        sock.sendall(frame[i : i + 1])
        if i < 10:
            time.sleep(0.01)
    assert lp.recv().raw == packet
    sock.close()


# -- what aiohttp must never read: passwords stay out of every reply and log -------------------


def answer_to(router: RouterProcess, request: bytes, seconds: float = 5.0) -> bytes:
    """Everything the router answers to `request`, until it closes (or `seconds` pass)."""
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        sock.settimeout(seconds)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@pytest.mark.parametrize("padding", [8100, 9000, 70_000])
def test_a_url_registration_of_any_length_never_shows_its_passwords(
    start_router: Callable[..., RouterProcess], padding: int
) -> None:
    router = start_router("-vv", "--log-format", "text")
    secrets = ("pw-of-ana-5521", "pw-of-band-7734")
    query = f"user=ana&password={secrets[0]}&group=band&group_password={secrets[1]}"
    request = upgrade_request(f"/osc?{query}&pad={'x' * padding}")
    answer = answer_to(router, request)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:80]  # 414 past aiohttp's line, else ws
    # a header with a control character, and one with a body's length, carry a secret too
    for header in (
        b"X-Note: \x01" + secrets[0].encode(),
        b"Content-Length: " + secrets[0].encode(),
    ):
        bad = upgrade_request(f"/osc?{query}").replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n\r\n")
        assert answer_to(router, bad).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        answer += answer_to(router, bad)
    assert healthz(router) == 200
    router.stop()
    seen = answer.decode("latin-1") + router.console() + router.log()
    for secret in secrets:
        assert secret not in seen
    assert "Traceback" not in router.console()


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET /healthz\r\n", b"400"),  # HTTP/0.9: no version, no blank line
        (b"GET /healthz\r\n\r\n", b"400"),
        (b"GET /healthz HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", b"505"),
        (b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    ],
)
def test_what_is_not_http_1_is_refused(
    router: RouterProcess, request_line: bytes, status: bytes
) -> None:
    answer = answer_to(router, request_line)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:80]
    assert b"\r\nConnection: close\r\n" in answer
    assert healthz(router) == 200


def test_http_1_0_and_keep_alive_requests_still_work(router: RouterProcess) -> None:
    answer = answer_to(router, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK") or answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"ok\n")
    two = answer_to(
        router,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert two.count(b"HTTP/1.1 200 OK") == 2
