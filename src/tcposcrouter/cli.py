"""The `tcposcrouter` command: flags, logging, the event loop, signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .framing import DEFAULT_MAX_PACKET_SIZE
from .server import DEFAULT_OSC10_PORT, DEFAULT_OSC11_PORT, RouterServer, ServerConfig

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
        "--host",
        action="append",
        metavar="ADDR",
        help="address to listen on; repeat for several (default: all interfaces, IPv4 and IPv6)",
    )
    parser.add_argument(
        "--max-packet-size",
        type=_size,
        default=DEFAULT_MAX_PACKET_SIZE,
        metavar="BYTES",
        help="largest OSC packet accepted, in bytes (default %(default)s = 1 MiB)",
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
    parser.add_argument("--version", action="version", version=f"tcposcrouter {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.disable_osc10 and args.disable_osc11:
        parser.error("--disable-osc10 and --disable-osc11 together leave nothing to listen on")
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


def server_config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        hosts=args.host,
        osc10_port=None if args.disable_osc10 else args.osc_port,
        osc11_port=None if args.disable_osc11 else args.osc11_port,
        max_packet_size=args.max_packet_size,
        log_messages=args.log_messages,
    )


async def serve(config: ServerConfig) -> int:
    server = RouterServer(config)
    try:
        addresses = await server.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    for address in addresses:
        log.info("listening on %s", address, extra={"console": True})

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
    args = parse_args(argv)
    setup_logging(args)
    loop_class = _loop_factory(args.event_loop)
    loop = loop_class() if loop_class is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(serve(server_config(args)))
    finally:
        loop.close()
