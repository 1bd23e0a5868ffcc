"""One listening port for every client musicians use (`--port`, docs/operating.md): a TLS client,
python-osc, sclang with the quark, Pd with the abstractions and the browser client in Chromium
(over HTTPS and WSS) all join one group through the same port, and each hears the others."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.tcp_client import SimpleTCPClient

from support.browser import (
    chromium,
    join_in_page,
    running_nginx,
    send_from_page,
    wait_for_text,
)
from support.client import Client
from support.osc import msg
from support.peers import REQUIRE_PEERS, PeerProgram, require_program, sclang_program
from support.process import RouterProcess, free_port, wait_until_listening
from support.tls import common_name, make_certificate, tls_socket

pytestmark = pytest.mark.timeout(240)

REPOSITORY = Path(__file__).resolve().parents[2]
QUARK = REPOSITORY / "supercollider" / "TcpOscRouter" / "Classes"
PEERS = Path(__file__).parent / "peers"


def test_every_kind_of_client_plays_in_one_group_through_one_port(
    start_router: Callable[..., RouterProcess], group: str, tmp_path: Path
) -> None:
    pd = require_program("pd")
    require_program("sclang")
    cert, key = make_certificate(tmp_path / "cert")
    port = free_port()
    router = start_router(
        "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
        "--no-tls-osc10", "--no-tls-osc11",
    )  # fmt: skip
    wait_until_listening(router.process, [port])
    tls = Client(port, sock=tls_socket(port, cert)).join("tls", group)
    pyosc = SimpleTCPClient("127.0.0.1", port, mode="1.0", timeout=5)
    pyosc.send_message("/oscrouter/register", ["pyosc", "pw", group, "gpw", 3])
    sc = sclang_program(
        PEERS / "quark" / "member.scd", tmp_path,
        {"TCPOSC_PORT": str(port), "TCPOSC_GROUP": group, "TCPOSC_USER": "sc"}, classes=[QUARK],
    )  # fmt: skip
    patch = tmp_path / "pd.pd"
    patch.write_text(
        (PEERS / "pd_member.pd.in").read_text()
        .replace("@ABSTRACTIONS@", str(REPOSITORY / "puredata" / "tcposcrouter"))
        .replace("@USER@", "pd").replace("@PASSWORD@", "pw")
        .replace("@GROUP@", group).replace("@PORT@", str(port))
    )  # fmt: skip
    pd_member = PeerProgram(
        [pd, "-nogui", "-nosound", "-nomidi", "-stderr", "-open", str(patch)], dict(os.environ)
    )
    try:
        with chromium(tmp_path / "profile", trust_certificate=cert) as driver:
            join_in_page(driver, f"https://localhost:{port}/client/", "web", group)
            sc.wait_for("QUARK_JOINED", 60)
            pd_member.wait_for("PD_STATUS: joined", 30)
            everyone = ["pd", "pyosc", "sc", "tls", "web"]
            deadline = time.monotonic() + 15
            while sorted(map(str, tls.recv_until("/oscrouter/userlist").args)) != everyone:
                assert time.monotonic() < deadline, "not everyone joined"
            # From the TLS client to every other kind.
            tls.send(msg("/note", "tls", 1))
            sc.wait_for("QUARK_GOT tls 1", 10)
            pd_member.wait_for("PD_GOT: note tls 1", 10)
            wait_for_text(driver, "log", '/note ,si "tls" 1')
            heard: list[OscMessage] = []
            while not any(m.address == "/note" for m in heard):
                heard += [OscMessage(p) for p in pyosc.receive(timeout=5) if p]
            assert [m.params for m in heard if m.address == "/note"] == [["tls", 1]]
            # And from each of them to the TLS client.
            tls.drain(0.3)
            tls.send(msg("/quark/send", 2))
            tls.send(msg("/pd/send", 3))
            send_from_page(driver, '/note "web" 4')
            pyosc.send_message("/note", ["pyosc", 5])
            got = sorted(tuple(tls.recv_until("/note").args) for _ in range(4))
            assert got == [("pd", 3.0), ("pyosc", 5), ("sc", 2), ("web", 4)]
    finally:
        pyosc.close()
        sc.stop()
        pd_member.stop()
        print(sc.output(), pd_member.output())
    assert router.process.poll() is None


NGINX_ONE_PORT = REPOSITORY / "examples" / "nginx" / "tcposcrouter-one-port.conf"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def test_behind_nginx_holding_443_the_example_passes_the_routers_clients_on(
    start_router: Callable[..., RouterProcess], group: str, tmp_path: Path
) -> None:
    """examples/nginx/tcposcrouter-one-port.conf in a real nginx, only its ports and names
    replaced: plain OSC and TLS for the router's name reach the router's one port, TLS for
    another name reaches nginx's own site."""
    require_program("nginx")
    if not STREAM_MODULE.is_file():
        missing = "nginx's stream module is not installed (Debian: libnginx-mod-stream)"
        if REQUIRE_PEERS:
            pytest.fail(missing + "; CI is set, so this is a failure, not a skip")
        pytest.skip(missing)
    router_cert, router_key = make_certificate(tmp_path / "router", name="router")
    site_cert, site_key = make_certificate(tmp_path / "site", name="other-site")
    one, front, site = free_port(), free_port(), free_port()
    router = start_router(
        "--port", str(one), "--tls-cert", str(router_cert), "--tls-key", str(router_key),
        "--no-tls-osc10", "--no-tls-osc11",
    )  # fmt: skip
    wait_until_listening(router.process, [one])
    stream = NGINX_ONE_PORT.read_text()
    for old, new in (
        ("listen 443;", f"listen 127.0.0.1:{front};"),
        ("listen [::]:443;", ""),
        ("router.example.org  127.0.0.1:8443;", f"localhost 127.0.0.1:{one};"),
        ('""                  127.0.0.1:8443;', f'"" 127.0.0.1:{one};'),
        ("default             127.0.0.1:4443;", f"default 127.0.0.1:{site};"),
    ):
        assert old in stream, f"{old} is no longer in {NGINX_ONE_PORT.name}: update this test"
        stream = stream.replace(old, new)
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "stream.conf").write_text(stream)
    site_block = f"""
    access_log off;
    server {{
        listen 127.0.0.1:{site} ssl;
        server_name other.example;
        ssl_certificate {site_cert};
        ssl_certificate_key {site_key};
        location / {{ return 200 "the other site\\n"; }}
    }}"""
    main = f"load_module {STREAM_MODULE};\ninclude {folder}/stream.conf;"
    with running_nginx(folder, site_block, [front], main):
        plain = Client(front).join("plain", group)
        secure = Client(front, sock=tls_socket(front, router_cert)).join("secure", group)
        assert common_name(secure.sock) == "router"  # type: ignore[arg-type]
        plain.drain(0.3)
        secure.send(msg("/through/nginx", 1))
        assert plain.recv_until("/through/nginx").args == [1]
        plain.send(msg("/back", 2))
        assert secure.recv_until("/back").args == [2]
        # TLS for another name: nginx's own site, with its own certificate.
        context = ssl.create_default_context(cafile=str(site_cert))
        context.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", front), timeout=5)
        with context.wrap_socket(raw, server_hostname="other.example") as other:
            assert common_name(other) == "other-site"
            other.sendall(b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
            assert b"the other site" in other.recv(4096)
