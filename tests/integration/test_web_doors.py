"""The HTTP port as the most attacked door (docs/operating.md, "The HTTP port on the public
internet"): security headers on every page, no compression to blow up, static files that never
leave the package, garbage answered with a 4xx, admin tokens throttled, and no secret in any
log line.

Drives server/http/live.py, server/http/port.py and server/http/security_headers.py."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from support.client import WsClient
from support.process import RouterProcess, free_port, wait_until_listening

PAGES = ["/", "/client/", "/static/dashboard.js", "/client/client.js", "/metrics", "/healthz"]


def request(router: RouterProcess, path: str, headers: dict[str, str] | None = None) -> tuple[
    int, dict[str, str], bytes
]:  # fmt: skip
    call = urllib.request.Request(router.http + path, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("path", [*PAGES, "/nothing-here"])
def test_every_page_carries_the_security_headers(router: RouterProcess, path: str) -> None:
    status, headers, _ = request(router, path)
    assert status == (404 if path == "/nothing-here" else 200)
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def raw_handshake(router: RouterProcess, path: str) -> str:
    """The response head to a WebSocket handshake that offers permessage-deflate."""
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.decode("latin-1")


@pytest.mark.parametrize("path", ["/osc", "/live"])
def test_compression_is_never_negotiated(router: RouterProcess, path: str) -> None:
    head = raw_handshake(router, path)
    assert head.startswith("HTTP/1.1 101")
    assert "sec-websocket-extensions" not in head.lower()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/client/..%2f..%2f..%2fpyproject.toml",
        "/client/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static/%252e%252e/%252e%252e/etc/passwd",
    ],
)
def test_static_files_never_leave_the_package(router: RouterProcess, path: str) -> None:
    status, _, body = request(router, path)
    assert 400 <= status < 500
    assert b"root:" not in body and b"[project]" not in body


def raw_request(router: RouterProcess, data: bytes) -> int:
    """The status code the router answers `data` with (0: it closed without answering)."""
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


@pytest.mark.parametrize(
    "data",
    [
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(1000)) + b"\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # TLS to a plain port
        b"BREW /pot HTCPCP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"\x00\xff" * 100 + b"\r\n\r\n",
    ],
    ids=["huge URL", "huge header", "1000 headers", "TLS", "unknown", "bad length", "garbage"],
)
def test_garbage_gets_a_4xx_never_a_5xx(router: RouterProcess, data: bytes) -> None:
    status = raw_request(router, data)
    assert status == 0 or 400 <= status < 500, status
    assert request(router, "/healthz")[0] == 200  # and the router is fine


def test_admin_tokens_are_throttled_per_address_without_locking_the_owner_out(
    router: RouterProcess,
) -> None:
    def ask(token: str, address: str) -> dict[str, object]:
        # The test connects from 127.0.0.1, a trusted proxy: X-Forwarded-For names the address.
        url = f"ws://127.0.0.1:{router.http_port}/live"
        with connect(url, additional_headers={"X-Forwarded-For": address}) as live:
            live.send(json.dumps({"token": token}))
            while True:
                reply = json.loads(live.recv(timeout=5))
                if reply["type"] == "access":
                    return dict(reply)

    answers = [ask(f"guess-{i}", "203.0.113.9")["error"] for i in range(8)]
    assert answers[:5] == ["wrong admin token"] * 5
    assert all(str(answer).startswith("too many wrong tokens") for answer in answers[6:])
    # Even the right token waits at the guesser's address, but the owner's address gets in.
    assert str(ask(router.admin_token, "203.0.113.9")["error"]).startswith("too many")
    assert ask(router.admin_token, "198.51.100.4")["access"] == "admin"


def test_no_secret_reaches_a_log_line(tmp_path: Path) -> None:
    """A router without --admin-token, in a cluster whose Redis wants a password (and is not
    there), with a URL registration refused for now (a new group needs the store): neither
    password, nor the token, nor Redis's password is on the console or in the log file; the
    token is in a file only its user can read."""
    http, osc = free_port(), free_port()
    runtime = tmp_path / "run"
    runtime.mkdir()
    logs = tmp_path / "logs"
    command = [
        sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(osc),
        "--no-osc11", "--http-port", str(http), "--log-dir", str(logs), "-v",
        "--cluster", f"redis://:redis-s3cret@127.0.0.1:{free_port()}/0",
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k != "TCPOSCROUTER_ADMIN_TOKEN"}
    environment["XDG_RUNTIME_DIR"] = str(runtime)
    console = tmp_path / "console.txt"
    with open(console, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        wait_until_listening(process, [http, osc], timeout=20)
        (token_file,) = runtime.glob("tcposcrouter-admin-token-*")
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        query = "user=ana&password=ana-s3cret&group=band&group_password=band-s3cret"
        web = WsClient(f"ws://127.0.0.1:{http}/osc?{query}")
        # Redis is away and the group is new: refused for now, after its passwords were read.
        assert web.recv().args[0] == "store_unavailable"
        web.close()
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert not token_file.exists()  # removed when the router stopped
    written = console.read_text() + "".join(p.read_text() for p in logs.glob("*.log"))
    assert "store_unavailable" in written and str(token_file) in written
    assert "redis://:***@127.0.0.1" in written  # the cluster's address, without its password
    for secret in ("ana-s3cret", "band-s3cret", token, "redis-s3cret"):
        assert secret not in written


def test_metrics_name_no_user_and_no_group(router: RouterProcess, group: str) -> None:
    member = WsClient(f"ws://127.0.0.1:{router.http_port}/osc").join("private-name", group)
    status, _, body = request(router, "/metrics")
    assert status == 200 and b"tcposcrouter_connections" in body
    assert b"private-name" not in body and group.encode() not in body
    member.close()
