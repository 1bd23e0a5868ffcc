"""One listening port for every client musicians use (`--port`, docs/operating.md): a TLS client,
python-osc, sclang with the quark, Pd with the abstractions and the browser client in Chromium
(over HTTPS and WSS) all join one group through the same port, and each hears the others."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.tcp_client import SimpleTCPClient

from support.browser import chromium, join_in_page, send_from_page, wait_for_text
from support.client import Client
from support.osc import msg
from support.peers import PeerProgram, require_program, sclang_program
from support.process import RouterProcess, free_port, wait_until_listening
from support.tls import make_certificate, tls_socket

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
