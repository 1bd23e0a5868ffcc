"""SuperCollider's sclang, headless, against the real router (docs/testing.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from support.browser import chromium, join_in_page, save_screenshot, send_from_page, wait_for_text
from support.client import Client
from support.osc import msg, register
from support.peers import PeerProgram, require_program, sclang_program
from support.process import RouterProcess, free_port

PEERS = Path(__file__).parent / "peers"


def _start_sclang(
    sclang: str,
    router: RouterProcess,
    group: str,
    tmp_path: Path,
    script: str = "sclang_client.scd",
    udp_port: int = 0,
    **env_extra: str,
) -> PeerProgram:
    """A script of peers/ in a headless sclang (sclang_client.scd joins `group` as "sc")."""
    env = {"TCPOSC_PORT": str(router.osc10_port), "TCPOSC_GROUP": group, **env_extra}
    return sclang_program(PEERS / script, tmp_path, env, udp_port)


def test_sclang_registers_and_exchanges_every_kind_of_message(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    sclang = require_program("sclang")
    py = Client(router.osc10_port)
    py.send(register("py", group, password="pw", group_password="oscrouter"))
    py.recv_until("/oscrouter/userlist")

    peer = _start_sclang(sclang, router, group, tmp_path)
    try:
        joined = peer.wait_for("SC_JOINED", timeout=60)
        assert "/oscrouter/register/sc/" in joined
        peer.wait_for("SC_USERLIST py,sc")
        peer.wait_for("SC_SENT")

        assert py.recv_until("/oscrouter/userlist").args == ["py", "sc"]
        note = py.recv()
        assert (note.address, note.args) == (
            "/from/sc",
            [1, 2.5, "a string", "a symbol", -2147483648],
        )
        sc_bundle = py.recv()
        assert sc_bundle.address == "#bundle"
        contents = sc_bundle.bundle()
        assert [(m.address, list(m.params)) for m in contents] == [
            ("/sc/bundle/one", [10]),
            ("/sc/bundle/two", ["x"]),
        ]
        private = py.recv()
        assert (private.address, private.args) == ("/oscrouter/private", ["sc", "/sc/private", 42])
        py.expect_nothing()  # the ping was neither forwarded nor answered with an error

        py.send(msg("/to/sc", 7, 0.25, "hello"))
        py.send(msg("/oscrouter/private", "sc", "/py/private", "bye"))
        got = peer.wait_for("SC_GOT ")
        assert got.endswith("SC_GOT Symbol:/to/sc Integer:7 Float:0.25 Symbol:hello")
        got_private = peer.wait_for("SC_GOT_PRIVATE")
        assert got_private.endswith(
            "Symbol:/oscrouter/private Symbol:py Symbol:/py/private Symbol:bye"
        )
        peer.wait_for("SC_DONE")
        assert "SC_ERROR" not in peer.output()
    finally:
        peer.stop()
        print(peer.output())  # shown by pytest -rA / on failure: what sclang printed


def test_sclang_and_a_browser_in_one_group(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    """The SuperCollider client and the browser client page in headless Chromium: each hears
    the other, privately too. The browser plays the part the Python client plays above."""
    sclang = require_program("sclang")
    with chromium(tmp_path / "profile") as driver:
        join_in_page(driver, f"{router.http}/client/", "py", group, group_password="oscrouter")
        peer = _start_sclang(sclang, router, group, tmp_path)
        try:
            peer.wait_for("SC_JOINED", timeout=60)
            peer.wait_for("SC_SENT")
            wait_for_text(driver, "users", "sc")
            wait_for_text(driver, "log", '/from/sc ,ifssi 1 2.5 "a string" "a symbol" -2147483648')
            wait_for_text(driver, "log", "/sc/bundle/two")
            wait_for_text(driver, "log", "private from sc: /sc/private ,i 42")

            send_from_page(driver, '/to/sc 7 0.25 "hello"')
            got = peer.wait_for("SC_GOT ")
            assert got.endswith("SC_GOT Symbol:/to/sc Integer:7 Float:0.25 Symbol:hello")
            send_from_page(driver, "/py/private bye", to="sc")
            got_private = peer.wait_for("SC_GOT_PRIVATE")
            assert got_private.endswith(
                "Symbol:/oscrouter/private Symbol:py Symbol:/py/private Symbol:bye"
            )
            peer.wait_for("SC_DONE")
            save_screenshot(driver, "browser-with-sclang.png")
            assert "SC_ERROR" not in peer.output()
        finally:
            peer.stop()
            print(peer.output())


def test_sclang_over_plain_udp_through_the_bridge(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    """sclang without any router class: NetAddr.sendMsg to the bridge, an OSCFunc on its own
    port for what the group sends; a TCP member on the other side, byte for byte."""
    sclang = require_program("sclang")
    sc_port, bridge_port = free_port(), free_port()
    py = Client(router.osc10_port).join("py", group, group_password="gpw")
    bridge = PeerProgram(
        [
            sys.executable, "-m", "tcposcrouter.cli.client", "bridge",
            "--server", f"127.0.0.1:{router.osc10_port}", "--user", "sc-bridge",
            "--group", group, "--group-password", "gpw",
            "--udp-listen", f"127.0.0.1:{bridge_port}", "--udp-forward", f"127.0.0.1:{sc_port}",
        ],
        {**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    peer = None
    try:
        bridge.wait_for("joined")
        py.recv_until("/oscrouter/userlist")
        peer = _start_sclang(
            sclang, router, group, tmp_path, "sclang_udp.scd", sc_port,
            TCPOSC_BRIDGE_PORT=str(bridge_port),
        )  # fmt: skip
        peer.wait_for("SC_UDP_SENT", timeout=60)
        assert py.recv().raw == msg("/from/sc/udp", 1, 2.5, "a string")
        sc_bundle = py.recv()
        assert [(m.address, m.params) for m in sc_bundle.bundle()] == [("/sc/udp/bundle", [10])]
        py.send(msg("/to/sc/udp", 7, 0.25, "hello"))
        got = peer.wait_for("SC_UDP_GOT")
        assert got.endswith("SC_UDP_GOT Symbol:/to/sc/udp Integer:7 Float:0.25 Symbol:hello")
        peer.wait_for("SC_DONE")
    finally:
        if peer is not None:
            peer.stop()
            print(peer.output())
        bridge.stop()
