"""The `tcposcrouter` command: flags and configuration file, logging, the event loop, signals
(SIGINT and SIGTERM stop the router, SIGHUP reloads the configuration file), and the `passwd`
subcommand."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..core.pinned import GroupRules
from ..limits import Limits
from ..server.app import (
    DEFAULT_HTTP_PORT,
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TLS_OSC10_PORT,
    DEFAULT_TLS_OSC11_PORT,
    DEFAULT_TRUSTED_PROXIES,
    RouterServer,
    ServerConfig,
)
from ..server.tls import TlsConfig, TlsContext
from . import passwd
from .config import ConfigError, read_config
from .logs import LogSetup

__all__ = ["main", "parse_args"]

log = logging.getLogger("tcposcrouter")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError("the maximum packet size must be at least 16 bytes")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _seconds(text: str) -> float:
    value = float(text)
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
    ("--login-failures", "login_failures_allowed", _count, "N",
     "failed logins at one account from one address before that address waits 1, 2, 4 ... 60 s "
     "for its next try there"),
    ("--login-accounts-per-address", "login_accounts_per_address", _count, "N",
     "accounts one address may fail at before all its logins wait 1, 2, 4 ... s"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcposcrouter",
        description=(
            "Run the tcposcrouter server: an OSC message router for networked music. Clients "
            "connect over TCP, register in a password-protected group, and every OSC message "
            "they send reaches everyone else in the group."
        ),
        epilog=(
            "'tcposcrouter passwd' prints the password hash a pinned group or user needs in "
            "the configuration file. SIGHUP reloads the configuration file and the certificate."
        ),
    )
    parser.add_argument(
        "--osc-port",
        type=_port,
        default=DEFAULT_OSC10_PORT,
        help="TCP port for OSC 1.0 length-prefix framing (default %(default)s)",
    )
    parser.add_argument(
        "--osc11-port",
        type=_port,
        default=DEFAULT_OSC11_PORT,
        help="TCP port for OSC 1.1 SLIP framing (default %(default)s)",
    )
    parser.add_argument(
        "--disable-osc10", action="store_true", help="do not listen on the OSC 1.0 port"
    )
    parser.add_argument(
        "--disable-osc11", action="store_true", help="do not listen on the OSC 1.1 port"
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=DEFAULT_HTTP_PORT,
        help="HTTP port: OSC over WebSocket at /osc, the dashboard, /metrics, /healthz, the "
        "browser client at /client/ (default %(default)s)",
    )
    parser.add_argument("--no-http", action="store_true", help="do not listen on the HTTP port")
    parser.add_argument(
        "--admin-token",
        default=os.environ.get("TCPOSCROUTER_ADMIN_TOKEN") or None,
        metavar="TOKEN",
        help="the dashboard's admin token, which shows every group's names (default: "
        "$TCPOSCROUTER_ADMIN_TOKEN, else one made at start-up and printed on the console)",
    )
    parser.add_argument(
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
        default=DEFAULT_TLS_OSC10_PORT,
        help="TCP port for OSC 1.0 length-prefix framing over TLS (default %(default)s)",
    )
    tls.add_argument(
        "--tls-osc11-port",
        type=_port,
        default=DEFAULT_TLS_OSC11_PORT,
        help="TCP port for OSC 1.1 SLIP framing over TLS (default %(default)s)",
    )
    tls.add_argument(
        "--disable-tls-osc10", action="store_true", help="do not listen on the TLS OSC 1.0 port"
    )
    tls.add_argument(
        "--disable-tls-osc11", action="store_true", help="do not listen on the TLS OSC 1.1 port"
    )
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
        help="run N router processes sharing the ports (needs --cluster); this process "
        "supervises them (default: one process, no supervisor)",
    )
    cluster.add_argument(
        "--reuse-port",
        action="store_true",
        help="open the ports with SO_REUSEPORT, to share them with other router processes "
        "(what --workers does for its processes)",
    )
    parser.add_argument(
        "--host",
        action="append",
        metavar="ADDR",
        help="address to listen on; repeat for several (default: all interfaces, IPv4 and IPv6)",
    )
    limits = parser.add_argument_group(
        "limits", "what one client may do; see 'Running a public server' in the README"
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
    limits.add_argument(
        "--no-rate-limit",
        action="store_true",
        help="switch both rate limits off",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="write a rotating log file tcposcrouter.log (10 MB x 5) into this directory",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text, or as JSON lines for log shippers (default %(default)s)",
    )
    parser.add_argument(
        "--log-messages",
        action="store_true",
        help="debug: also log the address and size of every routed message (with -vv)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="print connects, registrations and leaves on the console (-vv: debug)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors on the console"
    )
    parser.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop implementation (default auto: uvloop when installed)",
    )
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
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    return parser


def check_config(path: Path) -> int:
    """Exit status 0 if `path` is a good configuration file (and the certificate it names
    loads), else 2 with every problem on stderr."""
    parser = build_parser()
    try:
        settings = read_config(parser, path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    cert = settings.get("tls_cert")
    if cert is not None:
        try:
            TlsContext(cert, settings.get("tls_key") or cert)
        except (OSError, ssl.SSLError) as error:
            print(f"{path}: tls_cert, tls_key: cannot load them: {error}", file=sys.stderr)
            return 2
    print(f"{path}: ok")
    return 0


def _config_flags() -> argparse.ArgumentParser:
    """Only --config and --check-config, read before the rest: the file's values become the
    defaults the command line then overrides."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--config", type=Path)
    flags.add_argument("--check-config", type=Path)
    return flags


def load_settings(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The settings of the command line over those of its --config file; raise ConfigError
    for a bad file (SystemExit for bad flags, as argparse does)."""
    parser = build_parser()
    given, _ = _config_flags().parse_known_args(argv)
    if given.config is not None:
        parser.set_defaults(**read_config(parser, given.config))
    args = parser.parse_args(argv)
    if args.disable_osc10 and args.disable_osc11 and args.no_http:
        parser.error(
            "--disable-osc10, --disable-osc11 and --no-http together leave nothing to listen on"
        )
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert")
    if args.workers and args.cluster is None:
        parser.error("--workers needs --cluster: the processes share their groups through it")
    if args.cluster is not None and not args.cluster.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        parser.error(f"--cluster wants a redis:// URL, not {args.cluster!r}")
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    try:
        return load_settings(argv)
    except ConfigError as error:
        build_parser().error(f"bad configuration file:\n{error}")


def limits_from(args: argparse.Namespace) -> Limits:
    limits = Limits(**{field: getattr(args, field) for _, field, *_ in LIMIT_FLAGS})
    if args.no_rate_limit:
        limits = dataclasses.replace(limits, rate_limit_packets=0, rate_limit_bytes=0)
    return limits


def server_config(args: argparse.Namespace) -> ServerConfig:
    tls = None
    if args.tls_cert is not None:
        tls = TlsConfig(
            cert=args.tls_cert,
            key=args.tls_key or args.tls_cert,
            osc10_port=None if args.disable_tls_osc10 else args.tls_osc_port,
            osc11_port=None if args.disable_tls_osc11 else args.tls_osc11_port,
        )
    return ServerConfig(
        hosts=args.host,
        osc10_port=None if args.disable_osc10 else args.osc_port,
        osc11_port=None if args.disable_osc11 else args.osc11_port,
        http_port=None if args.no_http else args.http_port,
        admin_token=args.admin_token,
        trusted_proxies=(
            DEFAULT_TRUSTED_PROXIES if args.trusted_proxy is None else frozenset(args.trusted_proxy)
        ),
        limits=limits_from(args),
        log_messages=args.log_messages,
        group_rules=args.group_rules,
        tls=tls,
        cluster=args.cluster,
        node_id=args.node_id,
        reuse_port=args.reuse_port,
    )


def raise_open_file_limit(connections: int) -> None:
    """Let the process hold as many sockets as --max-connections allows.

    Many systems start processes with a soft limit of 1,024 open files; the hard limit is
    usually far higher and may be taken without privileges.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 100 if connections else hard
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        log.debug("open file limit raised from %d to %d", soft, wanted)
    if connections and wanted < connections + 100:
        log.warning(
            "the open file limit (%d) is below --max-connections (%d); raise it (ulimit -n)",
            wanted,
            connections,
        )


def reload(server: RouterServer, argv: Sequence[str] | None, logs: LogSetup) -> None:
    """SIGHUP: read the configuration file (and the certificate) again and apply what a running
    router can change; a file or certificate that cannot be used changes nothing."""
    try:
        args = load_settings(argv)
        restart = server.reload(server_config(args))
    except ConfigError as error:
        log.error(
            "reload refused, the running settings stay: bad configuration file:\n%s",
            error,
            extra={"console": True},
        )
        return
    except (OSError, ssl.SSLError) as error:
        log.error(
            "reload refused, the running settings stay: cannot load the certificate: %s",
            error,
            extra={"console": True},
        )
        return
    logs.apply(args)
    pinned = ", ".join(args.group_rules.names()) or "none"
    log.info(
        "reloaded: limits, pinned groups (%s), new groups %s%s",
        pinned,
        "allowed" if args.group_rules.allow_new_groups else "refused",
        ", certificate" if server.tls is not None else "",
        extra={"console": True},
    )
    if restart:
        log.warning("changed settings that only a restart applies: %s", ", ".join(sorted(restart)))


async def serve(
    config: ServerConfig,
    on_reload: Callable[[RouterServer], None] | None = None,
) -> int:
    raise_open_file_limit(config.limits.max_connections)
    try:
        server = RouterServer(config)
    except (OSError, ssl.SSLError) as exc:
        log.error("cannot load the certificate: %s", exc)
        return 1
    try:
        addresses = await server.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    for address in addresses:
        log.info("listening on %s", address, extra={"console": True})
    if config.http_port is not None and config.admin_token is None:
        host = (config.hosts or ["127.0.0.1"])[0]
        host = f"[{host}]" if ":" in host else host
        log.info(
            "dashboard with every name: %s://%s:%d/#token=%s (admin token made at start-up; "
            "set one with --admin-token)",
            "http" if config.tls is None else "https",
            host,
            config.http_port,
            server.admin_token,
            extra={"console": True},
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload, server)
    await stop.wait()
    log.info("shutting down", extra={"console": True})
    await server.stop()
    log.info("stopped", extra={"console": True})
    return 0


def _loop_factory(choice: str) -> type[asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit("tcposcrouter: uvloop is not installed") from None
        return None
    return uvloop.Loop


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["passwd"]:
        return passwd.main(arguments[1:])
    given, _ = _config_flags().parse_known_args(arguments)
    if given.check_config is not None:
        return check_config(given.check_config)
    args = parse_args(arguments)
    if args.workers:
        from ..cluster.workers import supervise

        return supervise(arguments, args.workers, args.node_id)
    logs = LogSetup(args)
    loop_class = _loop_factory(args.event_loop)
    loop = loop_class() if loop_class is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            serve(server_config(args), lambda server: reload(server, arguments, logs))
        )
    finally:
        loop.close()
