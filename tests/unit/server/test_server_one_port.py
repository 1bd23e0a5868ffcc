"""What the one port makes of a connection's first byte (server/one_port.py's `served_as`), for
the bytes real clients send first."""

from __future__ import annotations

from support.osc import msg, register
from tcposcrouter.osc.framing import Framing, frame
from tcposcrouter.server.one_port import served_as


def test_each_kind_of_client_is_served_as_its_own_port_would() -> None:
    hello = register("ana", "band")
    assert served_as(frame(hello, Framing.LENGTH_PREFIX), tls=False) == "osc"  # sclang, liblo
    assert served_as(frame(hello, Framing.SLIP), tls=False) == "osc"  # Pd's [slipenc]: END first
    assert served_as(hello, tls=False) == "osc"  # SLIP without the leading END: '/'
    assert served_as(b"#bundle\x00", tls=False) == "osc"
    assert served_as(b"GET /osc HTTP/1.1\r\n", tls=False) == "http"  # browsers, osc.js
    assert served_as(b"\x16\x03\x01\x02\x00\x01", tls=False) == "tls"  # a ClientHello


def test_inside_tls_only_http_and_osc_are_told_apart() -> None:
    assert served_as(b"GET / HTTP/1.1\r\n", tls=True) == "http"
    assert served_as(frame(msg("/x"), Framing.LENGTH_PREFIX), tls=True) == "osc"
    # TLS inside TLS is no client's: the OSC connection refuses it as an OSC port would.
    assert served_as(b"\x16\x03\x01", tls=True) == "osc"
