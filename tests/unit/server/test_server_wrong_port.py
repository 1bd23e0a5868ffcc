"""What each port answers a client speaking another port's protocol (server/wrong_port.py)."""

from __future__ import annotations

from pathlib import Path

from tcposcrouter.osc.framing import LengthPrefixDecoder, SlipDecoder
from tcposcrouter.osc.reading import read_message
from tcposcrouter.server.config import ServerConfig
from tcposcrouter.server.tls import TlsConfig
from tcposcrouter.server.wrong_port import on_http_port, on_osc_port

PLAIN = ServerConfig()
TLS = ServerConfig(tls=TlsConfig(Path("c.pem"), Path("k.pem"), 55558, None))


def test_http_at_an_osc_port_names_the_websocket_with_the_host_asked_for() -> None:
    wrong = on_osc_port(
        b"GET /osc HTTP/1.1\r\nHost: band.example.org:55555\r\n\r\n", PLAIN, "10.0.0.1"
    )
    assert wrong is not None
    head, _, body = wrong.answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nTcposcrouter-WebSocket: ws://band.example.org:55557/osc" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"http://band.example.org:55557/client/" in body
    assert "told ws://band.example.org:55557/osc" in wrong.detail


def test_without_a_host_header_the_address_reached_is_named() -> None:
    wrong = on_osc_port(b"GET / HTTP/1.0\r\n\r\n", TLS, "::1")
    assert wrong is not None
    assert b"Tcposcrouter-WebSocket: wss://[::1]:55557/osc" in wrong.answer
    odd = on_osc_port(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", PLAIN, "192.0.2.7")
    assert odd is not None and b"ws://192.0.2.7:55557/osc" in odd.answer  # never echoed


def test_a_router_without_http_says_so() -> None:
    wrong = on_osc_port(b"GET / HTTP/1.1\r\n", ServerConfig(http_port=None), "127.0.0.1")
    assert wrong is not None
    assert b"Tcposcrouter-WebSocket" not in wrong.answer
    assert b"This router has no HTTP port" in wrong.answer


def test_tls_at_a_plain_port_is_closed_without_a_word() -> None:
    for answer in (on_osc_port(b"\x16\x03\x01", PLAIN, "h"), on_http_port(b"\x16\x03\x01", PLAIN)):
        assert answer is not None and answer.answer == b""


def test_osc_at_the_http_port_gets_wrong_port_in_its_own_framing() -> None:
    length = on_http_port(b"\x00\x00\x00\x30/oscrouter/register\x00", TLS)
    slip = on_http_port(b"\xc0/oscrouter/register\x00", PLAIN)
    assert length is not None and slip is not None
    (from_length,) = LengthPrefixDecoder().feed(length.answer)
    (from_slip,) = SlipDecoder().feed(slip.answer)
    for packet in (from_length, from_slip):
        assert isinstance(packet, bytes)
        error = read_message(packet)
        assert error.address == "/oscrouter/error" and error.args[0] == "wrong_port"
    assert "55555 (length prefix), 55556 (SLIP), 55558 (TLS, length prefix)" in str(
        read_message(from_length).args[1]  # type: ignore[arg-type]
    )


def test_what_each_port_speaks_passes() -> None:
    assert on_osc_port(b"\x00\x00\x00\x10", PLAIN, "h") is None
    assert on_osc_port(b"\xc0", PLAIN, "h") is None
    assert on_osc_port(b"hello", PLAIN, "h") is None  # neither: the hub refuses it as today
    assert on_http_port(b"GET / HTTP/1.1\r\n", PLAIN) is None
