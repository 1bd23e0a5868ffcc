"""A real headless Chromium against the real router: the browser client page at /client/, first
directly, then through a real nginx with TLS (wss://), and the dashboard (docs/testing.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from support.browser import (
    chromium,
    join_in_page,
    nginx_with_tls,
    save_screenshot,
    send_from_page,
    wait_for_text,
)
from support.client import Client, WsClient
from support.osc import msg
from support.process import RouterProcess, free_port
from support.tls import make_certificate, tls_socket

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def exchange(driver: WebDriver, page: str, tcp: Client, group: str) -> None:
    """The page joins, hears the TCP client, and answers; the TCP client hears it."""
    join_in_page(driver, page, "browser", group)
    assert tcp.recv_until("/oscrouter/userlist").args == ["tcp", "browser"]
    wait_for_text(driver, "users", "tcp")

    tcp.send(msg("/from/tcp", 60, 0.5, "piano"))
    wait_for_text(driver, "log", '/from/tcp ,ifs 60 0.5 "piano"')

    send_from_page(driver, '/from/browser 7 0.25 "two words" T i:3 d:1.5')
    got = tcp.recv()
    assert got.address == "/from/browser"
    assert got.args == [7, 0.25, "two words", True, 3, 1.5]

    send_from_page(driver, "/chord 60\n/chord 64", as_bundle=True)
    sent = tcp.recv().bundle()
    assert [(m.address, m.params) for m in sent] == [("/chord", [60]), ("/chord", [64])]


def test_the_browser_client_joins_hears_and_answers(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    tcp = Client(router.osc10_port).join("tcp", group)
    with chromium(tmp_path / "profile") as driver:
        exchange(driver, f"{router.http}/client/", tcp, group)
        # A string as osc-js (Strudel) sends it, one byte per character: shown as typed.
        tcp.send(bytes.fromhex("2f7800002c73000068656c6c6f20fc00"))  # /x "hello ü"
        wait_for_text(driver, "log", '/x ,s "hello ü"')
        # And one in UTF-8, as the page itself (osc.js) and SuperCollider send it.
        tcp.send(msg("/y", "Grüße 音"))
        wait_for_text(driver, "log", '/y ,s "Grüße 音"')
        send_from_page(driver, '/from/browser "grüße"')
        assert tcp.recv().raw == msg("/from/browser", "grüße")
        save_screenshot(driver, "browser-client.png")


# A packet just under the default --max-packet-size, sent as Chromium frames it (the router's
# door reads every frame header): it arrives whole, byte for byte.
SEND_BIG_FROM_PAGE = """
const [url, size, done] = arguments;
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
ws.onmessage = (event) => {
  if (!(event.data instanceof ArrayBuffer)) return;
  const address = new TextDecoder().decode(new Uint8Array(event.data, 0, 20));
  if (!address.startsWith("/oscrouter/userlist")) return;
  const packet = new Uint8Array(16 + size);
  packet.set(new TextEncoder().encode("/big"), 0);
  packet.set(new TextEncoder().encode(",b"), 8);
  new DataView(packet.buffer).setInt32(12, size);
  for (let i = 0; i < size; i++) packet[16 + i] = i % 251;
  ws.send(packet.buffer);
  ws.onmessage = null;
  setTimeout(() => done("sent"), 200);
};
"""


def test_a_packet_near_the_size_limit_from_chromium_arrives_whole(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    tcp = Client(router.osc10_port).join("tcp", group)
    size = (1 << 20) - 16
    url = (
        f"ws://127.0.0.1:{router.http_port}/osc"
        f"?user=big&password=pw&group={group}&group_password=gpw"
    )
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{router.http}/client/")  # the page's origin, which its CSP lets connect
        driver.set_script_timeout(30)
        assert driver.execute_async_script(SEND_BIG_FROM_PAGE, url, size) == "sent"
        got = tcp.recv_until("/big", timeout=10).raw
    assert len(got) == 1 << 20
    assert got[16:] == bytes(i % 251 for i in range(size))


def test_the_browser_client_through_nginx_with_tls(
    start_router: Callable[..., RouterProcess], group: str, tmp_path: Path
) -> None:
    router = start_router("-v")
    tcp = Client(router.osc10_port).join("tcp", group)
    nginx_folder = tmp_path / "nginx"
    nginx_folder.mkdir()
    with (
        nginx_with_tls(nginx_folder, router.http_port or 0) as https_port,
        chromium(tmp_path / "profile", trust_any_certificate=True) as driver,
    ):
        page = f"https://127.0.0.1:{https_port}/client/"
        exchange(driver, page, tcp, group)
        assert driver.find_element("id", "server").get_attribute("value") == (
            f"wss://127.0.0.1:{https_port}/osc"
        )
    # A WebSocket's line is written when it ends; none carries a query string.
    access_log = (nginx_folder / "tcposcrouter.access.log").read_text()
    assert '"GET /osc" 101' in access_log and '"GET /client/" 200' in access_log
    # nginx passed the browser's address on, and the router used it.
    assert "connect [127.0.0.1 via 127.0.0.1:" in router.log()


def test_the_browser_client_over_wss_to_the_router_itself(
    start_router: Callable[..., RouterProcess], group: str, tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path / "tls")
    tls_port = free_port()
    router = start_router("--tls-cert", str(cert), "--tls-key", str(key),
                          "--tls-osc-port", str(tls_port), "--disable-tls-osc11")  # fmt: skip
    # The TCP member is on the TLS port too: encrypted from end to end.
    tcp = Client(tls_port, sock=tls_socket(tls_port, cert)).join("tcp", group)
    with chromium(tmp_path / "profile", trust_certificate=cert) as driver:
        page = f"https://127.0.0.1:{router.http_port}/client/"
        exchange(driver, page, tcp, group)
        assert driver.find_element("id", "server").get_attribute("value") == (
            f"wss://127.0.0.1:{router.http_port}/osc"
        )


def test_the_dashboard_shows_counts_and_with_the_token_names(
    start_router: Callable[..., RouterProcess], group: str, tmp_path: Path
) -> None:
    router = start_router()
    ana = Client(router.osc10_port).join("ana", group)
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc").join("webby", group)
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{router.http}/")
        wait_for_text(driver, "live", "live")
        wait_for_text(driver, "connections", "2")
        assert driver.find_element("id", "connections-tcp").text == "1"
        assert driver.find_element("id", "connections-websocket").text == "1"
        assert driver.find_element("id", "users-count").text == "2"
        assert "ana" not in driver.find_element("tag name", "main").text  # counts only

        bob = Client(router.osc10_port).join("bob", group)
        wait_for_text(driver, "users-count", "3")
        playing = threading.Event()

        def play() -> None:  # 50 beats a second while the dashboard watches
            while not playing.wait(0.02):
                bob.send(msg("/beat", 1))

        player = threading.Thread(target=play)
        player.start()
        try:
            driver.get(f"{router.http}/#token={router.admin_token}")
            wait_for_text(driver, "access", "admin")
            pages = wait_for_text(driver, "group-pages", "webby")
            assert group in pages and "ana" in pages and "bob" in pages
            assert "WebSocket" in pages and "ms" in pages  # transports and round-trip times
            WebDriverWait(driver, 10).until(
                lambda d: (
                    float(d.find_element("css selector", "tr[data-user=bob] td:nth-child(2)").text)
                    > 10
                )
            )
            time.sleep(2)  # a few points on the charts
            save_screenshot(driver, "dashboard-admin.png")
        finally:
            playing.set()
            player.join()

        web.close()
        wait_for_text(driver, "connections-websocket", "0")
        ana.close()
        wait_for_text(driver, "users-count", "1")
        pages = driver.find_element("id", "group-pages").text
        assert "ana" not in pages and "webby" not in pages and "bob" in pages


# Markup as a user name, a group name and an OSC argument: a page that wrote any of them as HTML
# would run it and change its title.
MARKUP = "<img src=x onerror=\"document.title='pwned'\">"


def test_nothing_a_member_sends_runs_in_a_browser(
    start_router: Callable[..., RouterProcess], tmp_path: Path
) -> None:
    router = start_router()
    group = "g<b>" + MARKUP[:20]
    mallory = Client(router.osc10_port).join(MARKUP, group)
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{router.http}/#token={router.admin_token}")
        wait_for_text(driver, "access", "admin")
        pages = wait_for_text(driver, "group-pages", MARKUP)
        assert group in pages
        assert driver.title != "pwned" and not driver.find_elements("css selector", "main img")
        # The browser client page: the same name in the user list, markup as a message.
        join_in_page(driver, f"{router.http}/client/", "viewer", group)
        wait_for_text(driver, "users", MARKUP)
        mallory.send(msg("/x", MARKUP))
        wait_for_text(driver, "log", MARKUP.replace('"', '\\"'))
        time.sleep(0.5)  # an onerror would have fired by now
        assert driver.title != "pwned" and not driver.find_elements("css selector", "#log img")


def test_the_page_shows_the_groups_beat_and_state(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    tcp = Client(router.osc10_port).join("tcp", group)
    tcp.send(msg("/oscrouter/state", "/scene", "intro"))
    tcp.send(msg("/oscrouter/tempo/set", 90.0))
    with chromium(tmp_path / "profile") as driver:
        join_in_page(driver, f"{router.http}/client/", "browser", group)
        wait_for_text(driver, "beat", "90.0 bpm · playing")
        shown = wait_for_text(driver, "beat", "bar ")
        assert "beat " in shown
        wait_for_text(driver, "state", '/scene ,s "intro"')
        time.sleep(0.3)  # the page follows the state's changes from now on
        tcp.send(msg("/oscrouter/state", "/fader", 0.5))
        wait_for_text(driver, "state", "/fader ,f 0.5")
        tcp.send(msg("/oscrouter/state/clear", "/scene"))
        WebDriverWait(driver, 10).until(
            lambda d: "/scene" not in d.find_element("id", "state").text
        )
        save_screenshot(driver, "browser-client-beat-and-state.png")


# Code on a page imports the module from the router, joins, and reports what it hears; then its
# connection drops (closed under it) and it resumes its place by itself.
USE_THE_MODULE = """
const [base, group, done] = arguments;
(async () => {
  const { join } = await import(base + "/client/tcposcrouter.js");
  const band = await join({ url: base.replace("http", "ws") + "/osc", user: "sketch",
    password: "pw", group, groupPassword: "gpw" });
  const heard = [];
  band.on("message", (m) => heard.push(m.address + " " + m.args.map((a) => a.value).join(" ")));
  while (!band.token || !band.tempo || band.roundTrip === Infinity) {
    await new Promise((r) => setTimeout(r, 20));
  }
  window.band = band; window.heard = heard;
  band.send("/from/sketch", 1, 0.5, "x");
  done({ beat: band.beat(), bar: band.bar(), next: band.nextBar(), users: band.users,
         state: [...band.state.keys()], bpm: band.tempo.bpm });
})().catch((error) => done({ error: String(error) }));
"""

DROP_AND_RESUME = """
const done = arguments[arguments.length - 1];
window.band.on("reconnected", (how) => done({ resumed: how.resumed }));
window.band.socket.close();
"""


def test_the_es_module_joins_follows_and_resumes_through_a_drop(
    router: RouterProcess, group: str, tmp_path: Path
) -> None:
    tcp = Client(router.osc10_port).join("tcp", group)
    tcp.send(msg("/oscrouter/state", "/scene", "intro"))
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{router.http}/client/")
        driver.set_script_timeout(20)
        got = driver.execute_async_script(USE_THE_MODULE, router.http, group)
        assert "error" not in got, got
        assert tcp.recv_until("/from/sketch").args == [1, 0.5, "x"]
        assert got["users"] == ["tcp", "sketch"] and got["state"] == ["/scene"]
        assert got["bpm"] == 120.0 and got["next"] % 4 == 0 and got["next"] > got["beat"]
        assert got["bar"]["bar"] == int(got["beat"] // 4) + 1
        resumed = driver.execute_async_script(DROP_AND_RESUME)
        assert resumed == {"resumed": True}
        for n in range(5):
            tcp.send(msg("/after", n))
        WebDriverWait(driver, 10).until(
            lambda d: (
                len(d.execute_script("return window.heard.filter((h) => h.startsWith('/after'))"))
                == 5
            )
        )
        heard = driver.execute_script("return window.heard")
        assert [h for h in heard if h.startswith("/after")] == [f"/after {n}" for n in range(5)]
        lists = [p.args for p in tcp.drain(0.3) if p.address == "/oscrouter/userlist"]
        assert all("sketch" in names for names in lists)  # nobody saw it leave


def test_the_module_may_be_imported_by_any_site(router: RouterProcess) -> None:
    import urllib.request

    for path in ("/client/tcposcrouter.js", "/client/vendor/osc-browser.min.js"):
        with urllib.request.urlopen(f"{router.http}{path}") as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Content-Type"].startswith(
                "text/javascript"
            ) or response.headers["Content-Type"].startswith("application/javascript")
    with urllib.request.urlopen(f"{router.http}/client/") as page:
        assert page.headers.get("Access-Control-Allow-Origin") is None
