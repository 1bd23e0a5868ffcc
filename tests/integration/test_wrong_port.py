"""The first hour: a client at the wrong port, with the wrong scheme or path, or facing a
certificate it does not trust, gets one line that names the cause and the fix — from
`tcposcrouter-client` (exit 3, no traceback, at once where the first bytes show the cause) and
from the router itself, which answers such a client in its own language and logs it at -v."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.client import Client
from support.osc import msg
from support.process import RouterProcess, free_port
from support.tls import make_certificate
from tcposcrouter.client import CannotConnect, RouterClient
from tcposcrouter.osc.framing import Framing, LengthPrefixDecoder, SlipDecoder, frame
from tcposcrouter.osc.messages import register_message
from tcposcrouter.osc.reading import read_message

COMMAND = [sys.executable, "-m", "tcposcrouter.cli.client"]
# The bound for a cause seen in the first bytes is 2 s; this catches the 10-s waits of
# before with room for a loaded machine.
AT_ONCE = 5.0


@dataclass
class Said:
    code: int
    line: str
    seconds: float


def send(server: str, *more: str, env: dict[str, str] | None = None) -> Said:
    """`tcposcrouter-client send --server SERVER /x 1`: its exit code and its one line."""
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, "send", "--server", server, *more, "/x", "1"],
        capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})},
    )  # fmt: skip
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert len(lines) <= 1, done.stderr  # one line, whatever went wrong
    return Said(done.returncode, lines[0] if lines else "", time.monotonic() - started)


@dataclass
class TlsRouter:
    router: RouterProcess
    tls10: int
    tls11: int
    cert: Path


@pytest.fixture
def tls_router(start_router: Callable[..., RouterProcess], tmp_path: Path) -> Iterator[TlsRouter]:
    cert, key = make_certificate(tmp_path / "tls")
    tls10, tls11 = free_port(), free_port()
    router = start_router(
        "-v", "--tls-cert", str(cert), "--tls-key", str(key),
        "--tls-osc-port", str(tls10), "--tls-osc11-port", str(tls11),
    )  # fmt: skip
    yield TlsRouter(router, tls10, tls11, cert)


@pytest.fixture
def plain_router(start_router: Callable[..., RouterProcess]) -> RouterProcess:
    return start_router("-v")


# -- what the client tools say ---------------------------------------------------------------


def test_ws_at_an_osc_port_is_told_the_websocket_url(plain_router: RouterProcess) -> None:
    osc, http = plain_router.osc10_port, plain_router.http_port
    for port in (osc, plain_router.osc11_port):
        said = send(f"ws://127.0.0.1:{port}/osc")
        assert said.code == 3 and said.seconds < AT_ONCE
        assert said.line == (
            f"tcposcrouter-client: cannot connect to ws://127.0.0.1:{port}/osc: 127.0.0.1:{port} "
            "is an OSC port of the router (plain TCP), not its WebSocket port: connect to it "
            f"without ws:// (--server 127.0.0.1:{port}), or the router's WebSocket: "
            f"ws://127.0.0.1:{http}/osc"
        )


def test_a_wrong_websocket_path_is_told_the_right_one(plain_router: RouterProcess) -> None:
    http = plain_router.http_port
    said = send(f"ws://127.0.0.1:{http}/wrong")
    assert said.code == 3 and said.seconds < AT_ONCE
    assert said.line.endswith(
        f"there is no WebSocket at /wrong on 127.0.0.1:{http} (HTTP 404): the router's is at "
        f"/osc: ws://127.0.0.1:{http}/osc"
    )


def test_osc_at_the_http_port_is_told_the_osc_ports(plain_router: RouterProcess) -> None:
    router = plain_router
    for server in (f"127.0.0.1:{router.http_port}", f"slip://127.0.0.1:{router.http_port}"):
        said = send(server)
        assert said.code == 3 and said.seconds < AT_ONCE
        assert "wrong port: this is the router's HTTP port" in said.line
        assert f"OSC over TCP is on port {router.osc10_port} (length prefix)" in said.line


def test_ws_at_the_https_port_is_told_wss(tls_router: TlsRouter) -> None:
    http = tls_router.router.http_port
    said = send(f"ws://127.0.0.1:{http}/osc")
    assert said.code == 3 and said.seconds < AT_ONCE
    assert said.line.endswith(f"127.0.0.1:{http} speaks TLS: use wss://127.0.0.1:{http}/osc")


def test_plain_tcp_at_a_tls_port_is_told_tls(tls_router: TlsRouter) -> None:
    tls10, tls11 = tls_router.tls10, tls_router.tls11
    said = send(f"127.0.0.1:{tls10}")
    assert said.code == 3 and said.seconds < AT_ONCE
    assert said.line.endswith(f"127.0.0.1:{tls10} speaks TLS: use tls://127.0.0.1:{tls10}")
    slip = send(f"slip://127.0.0.1:{tls11}")
    assert slip.line.endswith(f"speaks TLS: use tls+slip://127.0.0.1:{tls11}")


def test_tls_at_a_plain_port_is_told_to_leave_tls_out(tls_router: TlsRouter) -> None:
    router = tls_router.router
    osc = router.osc10_port
    said = send(f"tls://127.0.0.1:{osc}", env={"SSL_CERT_FILE": str(tls_router.cert)})
    assert said.code == 3 and said.seconds < AT_ONCE
    assert f"127.0.0.1:{osc} does not answer in TLS" in said.line
    assert f"leave out tls:// (--server 127.0.0.1:{osc}), or use the router's TLS port" in said.line
    # The router saw a TLS handshake at a plain port, and says so at -v.
    deadline = time.monotonic() + 5
    while "TLS handshake at a plain OSC port" not in router.log():
        assert time.monotonic() < deadline, router.log()
        time.sleep(0.05)


def test_an_untrusted_certificate_is_told_how_to_trust_it(tls_router: TlsRouter) -> None:
    tls10, http = tls_router.tls10, tls_router.router.http_port
    for server in (f"tls://127.0.0.1:{tls10}", f"wss://127.0.0.1:{http}/osc"):
        said = send(server)
        assert said.code == 3 and said.seconds < AT_ONCE
        assert "the router's certificate is not trusted on this machine (self-signed" in said.line
        assert "SSL_CERT_FILE=router.pem" in said.line
        # … and doing what it says works.
        trusted = send(server.replace("127.0.0.1", "localhost"),
                       env={"SSL_CERT_FILE": str(tls_router.cert)})  # fmt: skip
        assert trusted.code == 0, trusted.line


def test_nobody_at_a_port_and_a_web_address_are_told_plainly() -> None:
    port = free_port()
    said = send(f"127.0.0.1:{port}")
    assert said.code == 3
    assert f"nothing listens on 127.0.0.1:{port} (connection refused)" in said.line
    web = send("http://127.0.0.1:55557")
    assert web.code == 2
    assert "is a web page's address" in web.line and "ws://HOST:PORT/osc" in web.line


def test_the_library_raises_the_same_sentence_and_whether_to_try_again(
    plain_router: RouterProcess,
) -> None:
    async def attempt(server: str) -> CannotConnect:
        with pytest.raises(CannotConnect) as raised:
            await RouterClient.connect(server, "u", "p", "g", "gp")
        return raised.value

    wrong = asyncio.run(attempt(f"127.0.0.1:{plain_router.http_port}"))
    assert wrong.lasting and "wrong port" in wrong.reason
    down = asyncio.run(attempt(f"127.0.0.1:{free_port()}"))
    assert not down.lasting and "nothing listens" in down.reason
    assert isinstance(down, OSError)  # as before: code that caught OSError still does


# -- what the router answers, in the client's own language ----------------------------------


def read_until_closed(sock: socket.socket, timeout: float = AT_ONCE) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_an_http_request_at_an_osc_port_gets_an_http_answer(plain_router: RouterProcess) -> None:
    router = plain_router
    with socket.create_connection(("127.0.0.1", router.osc10_port), timeout=5) as sock:
        sock.sendall(
            b"GET /osc HTTP/1.1\r\nHost: router.example.org:1234\r\nUpgrade: websocket\r\n\r\n"
        )
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "Tcposcrouter-Port: osc" in lines
    assert f"Tcposcrouter-WebSocket: ws://router.example.org:{router.http_port}/osc" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert b"This is an OSC port of a tcposcrouter" in body
    # A browser pointed at the port reads the same text.
    url = f"http://127.0.0.1:{router.osc10_port}/"
    with pytest.raises(urllib.error.HTTPError) as browser:
        urllib.request.urlopen(url, timeout=5)
    assert browser.value.code == 400
    assert f"http://127.0.0.1:{router.http_port}/client/" in browser.value.read().decode()
    assert "HTTP request at an OSC port" in router.log()


@pytest.mark.parametrize("framing", [Framing.LENGTH_PREFIX, Framing.SLIP])
def test_osc_at_the_http_port_gets_wrong_port_in_its_framing(
    plain_router: RouterProcess, framing: Framing
) -> None:
    router = plain_router
    with socket.create_connection(("127.0.0.1", router.http_port or 0), timeout=5) as sock:
        sock.sendall(frame(register_message("ana", "pw", "band", "gpw", 7), framing))
        answer = read_until_closed(sock)
    decoder = LengthPrefixDecoder() if framing is Framing.LENGTH_PREFIX else SlipDecoder()
    (packet,) = decoder.feed(answer)
    assert isinstance(packet, bytes)
    error = read_message(packet)
    assert error.address == "/oscrouter/error" and error.args[0] == "wrong_port"
    assert f"OSC over TCP is on port {router.osc10_port} (length prefix)" in str(error.args[1])
    assert "OSC at the HTTP port" in router.log()


def test_wrong_ports_disturb_nobody_and_are_counted(
    plain_router: RouterProcess, group: str
) -> None:
    router = plain_router
    a = Client(router.osc10_port).join("a", group)
    b = Client(router.osc10_port).join("b", group)
    a.recv_until("/oscrouter/userlist")  # b joined
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", router.osc10_port), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
            read_until_closed(sock)
    a.send(msg("/still", 1))
    assert b.recv_until("/still").raw == msg("/still", 1)
    with urllib.request.urlopen(f"{router.http}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'tcposcrouter_errors_total{code="wrong_port"} 20.0' in metrics
