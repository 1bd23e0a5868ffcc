"""TLS on the real router: encrypted TCP ports beside the plain ones, HTTPS/WSS on the HTTP port,
and a renewed certificate taken on SIGHUP, with a certificate made by openssl at test time."""

from __future__ import annotations

import shutil
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.sync.client import connect

from support.client import Client, WsClient
from support.osc import IMMEDIATELY, bundle, msg
from support.process import RouterProcess, free_port
from support.tls import common_name, make_certificate, tls_socket
from tcposcrouter.osc.framing import Framing


def start_with_tls(
    start_router: Callable[..., RouterProcess], folder: Path, *extra: str
) -> tuple[RouterProcess, int, int, Path]:
    cert, key = make_certificate(folder / "first", name="first")
    # Where Let's Encrypt's files would be: renewed in place.
    live = folder / "live"
    live.mkdir()
    shutil.copy(cert, live / "fullchain.pem")
    shutil.copy(key, live / "privkey.pem")
    tls10, tls11 = free_port(), free_port()
    router = start_router(
        "-v",
        "--tls-cert", str(live / "fullchain.pem"), "--tls-key", str(live / "privkey.pem"),
        "--tls-osc-port", str(tls10), "--tls-osc11-port", str(tls11),
        *extra,
    )  # fmt: skip
    return router, tls10, tls11, live


def test_a_tls_client_and_a_plain_client_play_together(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, tls10, tls11, live = start_with_tls(start_router, tmp_path)
    trusted = live / "fullchain.pem"
    secure = Client(tls10, sock=tls_socket(tls10, trusted)).join("secure", group)
    slip = Client(tls11, Framing.SLIP, sock=tls_socket(tls11, trusted)).join("slip", group)
    plain = Client(router.osc10_port).join("plain", group)
    assert secure.recv_until("/oscrouter/userlist").args == ["secure", "slip"]
    assert secure.recv_until("/oscrouter/userlist").args == ["secure", "slip", "plain"]
    for client in (secure, slip, plain):
        client.drain()

    note = msg("/note", 60, 0.5, "over TLS")
    secure.send(note)
    assert plain.recv().raw == note and slip.recv().raw == note
    chord = bundle(IMMEDIATELY, msg("/chord", 60), msg("/chord", 64))
    plain.send(chord)
    assert secure.recv().raw == chord and slip.recv().raw == chord
    plain.send(msg("/oscrouter/private", "secure", "/psst", 1))
    private = secure.recv()
    assert (private.address, private.args) == ("/oscrouter/private", ["plain", "/psst", 1])
    slip.expect_nothing()
    # The plain ports stay what they were: a plain client on a TLS port gets no OSC.
    stray = Client(tls10)
    stray.send(msg("/oscrouter/register", "x", "pw", group, "gpw"))
    assert stray.wait_closed(15) == []
    assert ", TLS)" in router.log()


def test_https_and_wss_on_the_http_port(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, tls10, _, live = start_with_tls(start_router, tmp_path)
    context = ssl.create_default_context(cafile=str(live / "fullchain.pem"))
    url = f"wss://localhost:{router.http_port}/osc"
    browser = WsClient(url, ssl=context).join("web", group)
    secure = Client(tls10, sock=tls_socket(tls10, live / "fullchain.pem")).join("tcp", group)
    browser.drain()
    secure.send(msg("/from/tcp", 1))
    assert browser.recv().args == [1]
    browser.send(msg("/from/web", 2))
    assert secure.recv().args == [2]
    with pytest.raises(Exception):  # noqa: B017 - plain ws:// to an HTTPS port fails somehow
        connect(f"ws://127.0.0.1:{router.http_port}/osc", open_timeout=3).close()


def test_a_renewed_certificate_is_taken_on_sighup(
    start_router: Callable[..., RouterProcess], tmp_path: Path, group: str
) -> None:
    router, tls10, _, live = start_with_tls(start_router, tmp_path)
    old_trust = tmp_path / "first" / "cert.pem"
    before = Client(tls10, sock=tls_socket(tls10, old_trust)).join("before", group)
    assert common_name(before.sock) == "first"  # type: ignore[arg-type]

    # A broken renewal (a key that is not the certificate's) is refused; the old one stays.
    cert, key = make_certificate(tmp_path / "second", name="second")
    shutil.copy(cert, live / "fullchain.pem")
    router.process.send_signal(signal.SIGHUP)
    wait_for_log(router, "cannot load the certificate: the key ")
    assert "privkey.pem does not belong to the certificate" in router.log()
    check = tls_socket(tls10, old_trust)
    assert common_name(check) == "first"
    check.close()

    shutil.copy(key, live / "privkey.pem")
    router.process.send_signal(signal.SIGHUP)
    wait_for_log(router, "reloaded:")
    after = Client(tls10, sock=tls_socket(tls10, cert)).join("after", group)
    assert common_name(after.sock) == "second"  # type: ignore[arg-type]
    # The connection made with the old certificate plays on.
    before.drain()
    before.send(msg("/still", "here"))
    assert after.recv().args == ["here"]


def wait_for_log(router: RouterProcess, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in router.console():
        assert time.monotonic() < deadline, f"{text!r} never logged: {router.console()}"
        time.sleep(0.05)
