"""The `tcposcrouter` command: flags, logging, the event loop, signals."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import logging.handlers
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..limits import Limits
from ..server.app import (
    DEFAULT_HTTP_PORT,
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TRUSTED_PROXIES,
    RouterServer,
    ServerConfig,
)
from .config import ConfigError, read_config

__all__ = ["main", "parse_args"]

log = logging.getLogger("tcposcrouter")

# A log file rotates at 10 MB and keeps 5 old files: weeks of connect/leave lines of a busy
# public server, and a bound on the disk a chatty attacker can fill.
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


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
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    return parser


def check_config(path: Path) -> int:
    try:
        read_config(build_parser(), path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    given, _ = _config_flags().parse_known_args(argv)
    if given.config is not None:
        try:
            parser.set_defaults(**read_config(parser, given.config))
        except ConfigError as error:
            parser.error(f"bad configuration file:\n{error}")
    args = parser.parse_args(argv)
    if args.disable_osc10 and args.disable_osc11 and args.no_http:
        parser.error(
            "--disable-osc10, --disable-osc11 and --no-http together leave nothing to listen on"
        )
    return args


class _ConsoleFilter(logging.Filter):
    """Let through records at the console level, and the few marked for the console."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or getattr(record, "console", False)


def setup_logging(args: argparse.Namespace) -> None:
    root = logging.getLogger("tcposcrouter")
    root.setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
    root.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    if args.quiet:
        console.setLevel(logging.ERROR)
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
        console.addFilter(_ConsoleFilter(level))
    root.addHandler(console)

    if args.log_dir is None and args.verbose == 0:
        # Nothing would show the per-connection lines: do not even make them (a storm of
        # registers makes thousands).
        for name in ("tcposcrouter.hub", "tcposcrouter.server"):
            logging.getLogger(name).setLevel(logging.WARNING)

    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            args.log_dir / "tcposcrouter.log",
            maxBytes=LOG_FILE_BYTES,
            backupCount=LOG_FILE_BACKUPS,
            encoding="utf-8",
        )
        file_handler.setFormatter(fmt)
        file_handler.setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
        root.addHandler(file_handler)


def limits_from(args: argparse.Namespace) -> Limits:
    limits = Limits(**{field: getattr(args, field) for _, field, *_ in LIMIT_FLAGS})
    if args.no_rate_limit:
        limits = dataclasses.replace(limits, rate_limit_packets=0, rate_limit_bytes=0)
    return limits


def server_config(args: argparse.Namespace) -> ServerConfig:
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


async def serve(config: ServerConfig) -> int:
    raise_open_file_limit(config.limits.max_connections)
    server = RouterServer(config)
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
            "dashboard with every name: http://%s:%d/#token=%s (admin token made at start-up; "
            "set one with --admin-token)",
            host,
            config.http_port,
            server.admin_token,
            extra={"console": True},
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
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
    given, _ = _config_flags().parse_known_args(argv)
    if given.check_config is not None:
        return check_config(given.check_config)
    args = parse_args(argv)
    setup_logging(args)
    loop_class = _loop_factory(args.event_loop)
    loop = loop_class() if loop_class is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(serve(server_config(args)))
    finally:
        loop.close()
