"""The router's one configuration object (server/config.py): its defaults, and its OSC ports as
the listeners, the console and the error lines name them."""

from __future__ import annotations

from pathlib import Path

from tcposcrouter.server.config import OscPort, ServerConfig, osc_ports
from tcposcrouter.server.tls import TlsConfig


def test_the_defaults_are_the_contracts_ports() -> None:
    config = ServerConfig()
    assert (config.osc10_port, config.osc11_port, config.http_port) == (55555, 55556, 55557)
    assert [(p.port, p.framing, p.tls) for p in osc_ports(config)] == [
        (55555, "length prefix", False),
        (55556, "SLIP", False),
    ]


def test_tls_ports_follow_the_plain_ones_and_a_port_switched_off_is_left_out() -> None:
    tls = TlsConfig(Path("c.pem"), Path("k.pem"), osc10_port=55558, osc11_port=None)
    ports = osc_ports(ServerConfig(osc10_port=None, osc11_port=0, tls=tls))
    assert ports == [
        OscPort(0, "1.1", "SLIP", False, "--osc11-port"),  # 0: the system chooses one
        OscPort(55558, "1.0", "length prefix", True, "--tls-osc-port"),
    ]
