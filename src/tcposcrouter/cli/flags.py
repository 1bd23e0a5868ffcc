"""The `tcposcrouter` command's flags, grouped as `--help` shows them (the way nats-server
groups its own): listening, web, TLS, cluster, limits, logging, configuration. Every flag is
also a key of the configuration file (cli/config.py), named as the flag without its dashes.

A thing is switched off one way, `--no-…`. The spellings of earlier releases (`--disable-osc10`
and its kind) still work, and as file keys too, but are hidden from `--help`: operators'
scripts use them. docs/cli.md is made from this parser (`tools/cli_doc.py`; a test checks it).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..core.pinned import GroupRules
from ..limits import Limits
from ..server.config import (
    DEFAULT_HTTP_PORT,
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TLS_OSC10_PORT,
    DEFAULT_TLS_OSC11_PORT,
)
from .parser import Parser

__all__ = ["HIDDEN_ALIASES", "LIMIT_FLAGS", "build_parser"]


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def _size(text: str) -> int:
    value = _whole(text)
    if value < 16:
        raise argparse.ArgumentTypeError("the maximum packet size must be at least 16 bytes")
    return value


def _count(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds")
    return value


# One row per limit flag: (flag, Limits field, type, metavar, help). Defaults and their reasons
# live in limits.Limits; this table only names them on the command line.
LIMIT_FLAGS: tuple[tuple[str, str, Callable[[str], float], str, str], ...] = (
    ("--max-packet-size", "max_packet_size", _size, "BYTES",
     "largest OSC packet accepted from a registered client"),
    ("--max-connections", "max_connections", _count, "N", "connections in all; 0: no limit"),
    ("--max-connections-per-address", "max_connections_per_address", _count, "N",
     "registered connections from one IP address; 0: no limit"),
    ("--max-unregistered-per-address", "max_unregistered_per_address", _count, "N",
     "connections from one IP address not registered yet, beyond which the oldest is closed to "
     "make room; 0: no limit"),
    ("--register-timeout", "register_timeout", _seconds, "SECONDS",
     "close a connection that has not registered by then"),
    ("--idle-timeout", "idle_timeout", _seconds, "SECONDS",
     "close a registered connection that sent nothing, not even a ping, for that long; 0: never"),
    ("--peer-timeout", "peer_timeout", _seconds, "SECONDS",
     "drop a connection whose peer has not answered the kernel for that long (vanished); "
     "0: the kernel's defaults"),
    ("--close-grace", "close_grace", _seconds, "SECONDS",
     "reset a connection the router closes if its last bytes are not taken by then"),
    ("--max-output-buffer", "max_output_buffer", _count, "BYTES",
     "bytes waiting for one receiver before it is dropped as a slow consumer; 0: no limit"),
    ("--rate-limit-packets", "rate_limit_packets", _seconds, "PER_SECOND",
     "packets per second one connection may send, with a 2-second burst, before the router "
     "reads more slowly from it; 0: off"),
    ("--rate-limit-bytes", "rate_limit_bytes", _seconds, "PER_SECOND",
     "bytes per second one connection may send, likewise; 0: off"),
    ("--max-users-per-group", "max_users_per_group", _count, "N",
     "users in one group; 0: no limit"),
    ("--max-groups", "max_groups", _count, "N", "groups on the router; 0: no limit"),
    ("--max-state-addresses", "max_state_addresses", _count, "N",
     "addresses whose last message a group keeps for late joiners"),
    ("--max-state-bytes", "max_state_bytes", _size, "BYTES",
     "bytes of those messages a group keeps in all"),
    ("--max-session-seconds", "max_session_seconds", _count, "SECONDS",
     "the longest a member's place is kept after its connection drops, for it to resume; "
     "0: no sessions"),
    ("--max-session-bytes", "max_session_bytes", _size, "BYTES",
     "bytes of packets kept for one member until it acknowledges them, connected or held"),
    ("--login-failures", "login_failures_allowed", _count, "N",
     "failed logins at one account from one address before that address waits 1, 2, 4 ... 60 s "
     "for its next try there"),
    ("--login-accounts-per-address", "login_accounts_per_address", _count, "N",
     "accounts one address may fail at before all its logins wait 1, 2, 4 ... s"),
)  # fmt: skip

# Spellings of earlier releases, still taken (on the command line and as file keys) but not
# shown: old spelling -> the flag it stands for.
HIDDEN_ALIASES = {
    "--disable-osc10": "--no-osc10",
    "--disable-osc11": "--no-osc11",
    "--disable-tls-osc10": "--no-tls-osc10",
    "--disable-tls-osc11": "--no-tls-osc11",
}


def _switch_off(group: argparse._ArgumentGroup, flag: str, text: str) -> None:
    """`--no-X`, and its hidden old spelling if it has one."""
    dest = flag.lstrip("-").replace("-", "_")
    group.add_argument(flag, dest=dest, action="store_true", help=text)
    for old, new in HIDDEN_ALIASES.items():
        if new == flag:
            group.add_argument(old, dest=dest, action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tcposcrouter",
        description=(
            "Run the tcposcrouter server: an OSC message router for networked music. Clients "
            "connect over TCP or WebSocket, register in a password-protected group, and every "
            "OSC message they send reaches everyone else in the group."
        ),
        epilog=(
            "'tcposcrouter passwd' prints the password hash a pinned group or user needs in "
            "the configuration file. SIGHUP reloads the configuration file and the certificate. "
            "Every flag is described in docs/cli.md."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read settings from a TOML file (examples/tcposcrouter.toml lists every key); "
        "flags given as well override it",
    )
    parser.add_argument(
        "--check-config",
        type=Path,
        metavar="FILE",
        help="check a configuration file, explain each problem with its line, and exit",
    )
    # Pinned groups and allow_new_groups come only from the file (cli/config.py).
    parser.set_defaults(group_rules=GroupRules())

    listening = parser.add_argument_group("listening", "the OSC ports, plain TCP")
    listening.add_argument(
        "--host",
        action="append",
        metavar="ADDR",
        help="address to listen on; repeat for several (default: all interfaces, IPv4 and IPv6)",
    )
    listening.add_argument(
        "--osc-port",
        type=_port,
        metavar="PORT",
        default=DEFAULT_OSC10_PORT,
        help="TCP port for OSC 1.0 length-prefix framing (default %(default)s)",
    )
    listening.add_argument(
        "--osc11-port",
        type=_port,
        metavar="PORT",
        default=DEFAULT_OSC11_PORT,
        help="TCP port for OSC 1.1 SLIP framing (default %(default)s)",
    )
    _switch_off(listening, "--no-osc10", "do not listen on the OSC 1.0 port")
    _switch_off(listening, "--no-osc11", "do not listen on the OSC 1.1 port")
    listening.add_argument(
        "--port",
        type=_port,
        metavar="PORT",
        help="one more port that takes every kind of client, told apart by what each says "
        "first: OSC in either framing, HTTP (WebSocket, dashboard, browser client) and, with "
        "a certificate, TLS around either; 443 lets clients through networks that block other "
        "ports (default: none)",
    )

    web = parser.add_argument_group(
        "web", "the HTTP port: OSC over WebSocket, the dashboard, metrics, health"
    )
    web.add_argument(
        "--http-port",
        type=_port,
        metavar="PORT",
        default=DEFAULT_HTTP_PORT,
        help="HTTP port: OSC over WebSocket at /osc, the dashboard, /metrics, /healthz, the "
        "browser client at /client/ (default %(default)s)",
    )
    _switch_off(web, "--no-http", "do not listen on the HTTP port")
    web.add_argument(
        "--admin-token",
        default=os.environ.get("TCPOSCROUTER_ADMIN_TOKEN") or None,
        metavar="TOKEN",
        help="the dashboard's admin token, which shows every group's names (default: "
        "$TCPOSCROUTER_ADMIN_TOKEN, else one made at start-up and printed on the console)",
    )
    web.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="address of a reverse proxy whose X-Forwarded-For names the WebSocket client; "
        "repeat for several (default: 127.0.0.1 and ::1)",
    )

    tls = parser.add_argument_group(
        "TLS", "encryption for clients that can do it; the plain ports stay for those that cannot"
    )
    tls.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="PEM certificate with its chain (Let's Encrypt's fullchain.pem): adds the TLS "
        "ports and makes the HTTP port HTTPS/WSS; reloaded on SIGHUP",
    )
    tls.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help="PEM private key of --tls-cert (privkey.pem; default: the key is in --tls-cert)",
    )
    tls.add_argument(
        "--tls-osc-port",
        type=_port,
        metavar="PORT",
        default=DEFAULT_TLS_OSC10_PORT,
        help="TCP port for OSC 1.0 length-prefix framing over TLS (default %(default)s)",
    )
    tls.add_argument(
        "--tls-osc11-port",
        type=_port,
        metavar="PORT",
        default=DEFAULT_TLS_OSC11_PORT,
        help="TCP port for OSC 1.1 SLIP framing over TLS (default %(default)s)",
    )
    _switch_off(tls, "--no-tls-osc10", "do not listen on the TLS OSC 1.0 port")
    _switch_off(tls, "--no-tls-osc11", "do not listen on the TLS OSC 1.1 port")

    cluster = parser.add_argument_group(
        "cluster", "several router processes, on one machine or many, as one router (Redis)"
    )
    cluster.add_argument(
        "--cluster",
        metavar="URL",
        help="redis://HOST:PORT/DB (or rediss://): keep groups, users and presence there and "
        "carry packets between nodes over its pub/sub",
    )
    cluster.add_argument(
        "--node-id",
        metavar="NAME",
        help="this node's name in the cluster, also in its log file's name (default: host "
        "name and process id)",
    )
    cluster.add_argument(
        "--workers",
        type=_count,
        default=0,
        metavar="N",
        help="run N router processes sharing the ports, each group in one of them, with or "
        "without --cluster; this process supervises them (default: one process, no supervisor)",
    )
    cluster.add_argument(
        "--reuse-port",
        action="store_true",
        help="open the ports with SO_REUSEPORT, to share them with other router processes "
        "(what --workers does for its processes)",
    )

    limits = parser.add_argument_group(
        "limits", "what one client may do; see docs/operating.md, 'Limits'"
    )
    default = Limits()
    for flag, field, kind, metavar, text in LIMIT_FLAGS:
        limits.add_argument(
            flag,
            dest=field,
            type=kind,
            default=getattr(default, field),
            metavar=metavar,
            help=f"{text} (default %(default)s)",
        )
    limits.add_argument("--no-rate-limit", action="store_true", help="switch both rate limits off")

    logging_ = parser.add_argument_group("logging")
    logging_.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="print connects, registrations and leaves on the console (-vv: debug)",
    )
    logging_.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors on the console"
    )
    logging_.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="write a rotating log file tcposcrouter.log (10 MB x 5) into this directory",
    )
    logging_.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text, or as JSON lines for log shippers (default %(default)s)",
    )
    logging_.add_argument(
        "--log-messages",
        action="store_true",
        help="debug: also log the address and size of every routed message (with -vv)",
    )

    tuning = parser.add_argument_group("performance")
    tuning.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop implementation (default auto: uvloop when installed)",
    )
    return parser
