"""Strings as clients send them (docs/protocol.md §2): osc-js writes every character below 256 as
one byte (Latin-1), SuperCollider and Pd write UTF-8. The router forwards both byte for byte,
with no error to the sender, and reads UTF-8 only in what it reads itself: register fields and
private-message targets. The client library and `listen` show a Latin-1 string as it was typed.
"""

from __future__ import annotations

import subprocess
import sys
import time

from support.client import Client, WsClient
from support.osc import osc_string, raw_message
from support.process import RouterProcess
from tcposcrouter.client import BlockingClient
from tcposcrouter.osc.framing import Framing

# `new OSC.Message('/x', 'hello ü').pack()` with osc-js 2.4.1 (checked with node): the string is
# 68 65 6c 6c 6f 20 fc 00.
OSC_JS_HELLO = bytes.fromhex("2f7800002c73000068656c6c6f20fc00")
# osc-js's `new OSC.Message('/oscrouter/register', 'ana', 'Müller', 'band', 'gpw')`.
OSC_JS_REGISTER = bytes.fromhex(
    "2f6f7363726f757465722f7265676973746572002c73737373000000616e61004dfc6c6c6572000062616e64"
    "0000000067707700"
)


def test_a_latin1_string_is_forwarded_byte_for_byte_to_every_transport(
    router: RouterProcess, group: str
) -> None:
    strudel = Client(router.osc10_port).join("strudel", group)
    slip = Client(router.osc11_port, Framing.SLIP).join("pd", group)
    web = WsClient(f"ws://127.0.0.1:{router.http_port}/osc").join("web", group)
    for member in (strudel, slip, web):
        member.drain(0.2)
    utf8 = raw_message("/x", ",sS", osc_string("hello ü") + osc_string("Grüße"))
    for packet in (OSC_JS_HELLO, utf8):
        strudel.send(packet)
        assert slip.recv().raw == packet
        assert web.recv().raw == packet
    strudel.send(osc_string(b"/caf\xe9") + osc_string(b",s") + osc_string(b"\xff\xfe"))
    assert slip.recv().raw == osc_string(b"/caf\xe9") + osc_string(b",s") + osc_string(b"\xff\xfe")
    assert strudel.drain(0.3) == []  # no error reply to the sender


def test_the_client_library_and_listen_show_latin1_as_typed(
    router: RouterProcess, group: str
) -> None:
    server = f"127.0.0.1:{router.osc10_port}"
    listen = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter.cli.client", "listen", "--server", server,
         "--user", "listener", "--group", group, "--group-password", "gpw"],
        stdout=subprocess.PIPE, text=True, encoding="utf-8",
    )  # fmt: skip
    try:
        with BlockingClient(server, "ana", "pw", group, "gpw") as library:
            strudel = Client(router.osc10_port).join("strudel", group)
            deadline = time.monotonic() + 10
            while "listener" not in library.users:
                assert time.monotonic() < deadline, "listen never joined"
                library.receive(timeout=0.1)
            strudel.send(OSC_JS_HELLO)
            packet = library.receive(timeout=5)
            while packet is not None and packet.raw != OSC_JS_HELLO:
                packet = library.receive(timeout=5)
            assert packet is not None
            assert (packet.address, packet.args) == ("/x", ["hello ü"])
            assert listen.stdout is not None
            line = listen.stdout.readline()
            while not line.startswith("/x "):
                line = listen.stdout.readline()
            assert line.rstrip("\n") == '/x s "hello ü"'
    finally:
        listen.terminate()
        listen.wait(10)
        if listen.stdout is not None:
            listen.stdout.close()


def test_what_the_router_reads_must_be_utf8_and_it_says_so(
    router: RouterProcess, group: str
) -> None:
    # osc-js's register with "Müller" as the password: the router reads it, so it must be UTF-8.
    newcomer = Client(router.osc10_port)
    newcomer.send(OSC_JS_REGISTER)
    (reply,) = newcomer.wait_closed()
    assert reply.address == "/oscrouter/error"
    assert reply.args[0] == "bad_register" and "user password is not UTF-8" in str(reply.args[1])
    # A private message's target is a user name; its address and arguments go as they came.
    ana = Client(router.osc10_port).join("ana", group)
    bob = Client(router.osc10_port).join("bob", group)
    ana.drain(0.2)
    bob.drain(0.2)
    ana.send(raw_message("/oscrouter/private", ",ss", osc_string(b"b\xf6b") + osc_string("/x")))
    error = ana.recv_until("/oscrouter/error")
    assert error.args[0] == "bad_private" and not ana.closed
    latin1 = raw_message("/oscrouter/private", ",sss", b"".join(
        osc_string(part) for part in (b"bob", b"/f\xfc", b"hello \xfc")
    ))  # fmt: skip
    ana.send(latin1)
    got = bob.recv()
    assert got.raw == raw_message("/oscrouter/private", ",sss", b"".join(
        osc_string(part) for part in (b"ana", b"/f\xfc", b"hello \xfc")
    ))  # fmt: skip
