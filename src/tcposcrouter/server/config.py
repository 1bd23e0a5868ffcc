"""The server's settings and their defaults: what the command line and the configuration file
(cli/) turn into, and what a reload may change."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.pinned import GroupRules
from ..limits import Limits
from ..osc.framing import (
    DEFAULT_HTTP_PORT,
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TLS_OSC10_PORT,
    DEFAULT_TLS_OSC11_PORT,
)
from .tls import TlsConfig

__all__ = [
    "DEFAULT_HTTP_PORT",
    "DEFAULT_OSC10_PORT",
    "DEFAULT_OSC11_PORT",
    "DEFAULT_TLS_OSC10_PORT",
    "DEFAULT_TLS_OSC11_PORT",
    "DEFAULT_TRUSTED_PROXIES",
    "RELOADABLE",
    "OscPort",
    "ServerConfig",
    "osc_ports",
]

# The default ports are the wire contract's (osc/framing.py), shared with the client library.
# With a certificate the two framings are served over TLS too, next to the plain ports (which
# stay, for clients that cannot do TLS: sclang, Pd).
# Where a reverse proxy on the same machine (nginx for port 443) connects from: its
# X-Forwarded-For names the client (see server/http/websocket.py's client_address).
DEFAULT_TRUSTED_PROXIES = frozenset({"127.0.0.1", "::1"})


@dataclass(frozen=True)
class ServerConfig:
    hosts: list[str] | None = None  # None: every interface, IPv4 and IPv6
    osc10_port: int | None = DEFAULT_OSC10_PORT  # None: disabled
    osc11_port: int | None = DEFAULT_OSC11_PORT
    http_port: int | None = DEFAULT_HTTP_PORT  # WebSocket, dashboard, metrics; None: off
    one_port: int | None = None  # every kind of client on one port (server/one_port.py)
    admin_token: str | None = None  # the dashboard's; None: one is made at start-up
    trusted_proxies: frozenset[str] = DEFAULT_TRUSTED_PROXIES
    limits: Limits = field(default_factory=Limits)
    log_messages: bool = False
    group_rules: GroupRules = field(default_factory=GroupRules)
    tls: TlsConfig | None = None  # a certificate: TLS listeners, and HTTPS on the HTTP port
    cluster: str | None = None  # redis://HOST:PORT/DB: a node of a cluster (cluster/node.py)
    node_id: str | None = None  # its name in the cluster; None: host name and process id
    reuse_port: bool = False  # share the listening ports with other processes (--workers)


# What a reload (SIGHUP) can change without a restart; everything else is a listening socket
# or set up once, and a change to it is logged as needing a restart.
RELOADABLE = ("limits", "group_rules", "admin_token", "trusted_proxies", "tls")  # tls: its files


@dataclass(frozen=True)
class OscPort:
    """One OSC port the router opens, as the listeners, the console and the error lines name
    it."""

    port: int
    version: str  # "1.0" or "1.1"
    framing: str  # "length prefix" or "SLIP"
    tls: bool
    flag: str  # the flag that sets it


def osc_ports(config: ServerConfig) -> list[OscPort]:
    """Every OSC port of `config`: the plain ones, then those over TLS."""
    tls = config.tls
    wanted = [
        (config.osc10_port, "1.0", "length prefix", False, "--osc-port"),
        (config.osc11_port, "1.1", "SLIP", False, "--osc11-port"),
        (None if tls is None else tls.osc10_port, "1.0", "length prefix", True, "--tls-osc-port"),
        (None if tls is None else tls.osc11_port, "1.1", "SLIP", True, "--tls-osc11-port"),
    ]
    return [
        OscPort(port, version, framing, secure, flag)
        for port, version, framing, secure, flag in wanted
        if port is not None  # 0: a port the system chooses
    ]
