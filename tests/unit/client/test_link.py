"""Where --server points (client/link.py): a port left out is the scheme's default, a server that
cannot be is refused with what to write."""

from __future__ import annotations

import pytest

from tcposcrouter.client.link import parse_server
from tcposcrouter.osc.framing import Framing


@pytest.mark.parametrize(
    ("server", "parsed"),
    [
        ("router.example.org", ("tcp", "router.example.org", 55555, Framing.LENGTH_PREFIX)),
        ("slip://router.example.org", ("tcp", "router.example.org", 55556, Framing.SLIP)),
        ("tls://router.example.org", ("tls", "router.example.org", 55558, Framing.LENGTH_PREFIX)),
        ("tls+slip://[::1]", ("tls", "::1", 55559, Framing.SLIP)),
        ("[::1]:6000", ("tcp", "::1", 6000, Framing.LENGTH_PREFIX)),
        ("osc.tcp://h:7000", ("tcp", "h", 7000, Framing.LENGTH_PREFIX)),
    ],
)
def test_a_port_left_out_is_the_routers_default_for_the_scheme(
    server: str, parsed: tuple[str, str, int, Framing]
) -> None:
    assert parse_server(server) == parsed


@pytest.mark.parametrize(
    ("server", "said"),
    [
        ("http://h:55557", "is a web page's address"),
        ("https://h", "wss://HOST:PORT/osc"),
        ("udp://h:1", "unknown scheme"),
        ("h:port", "not HOST:PORT"),
        ("h:70000", "is not a TCP port"),
    ],
)
def test_a_server_that_cannot_be_is_refused_with_what_to_write(server: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("(", r"\(").replace("/", "/")):
        parse_server(server)
