"""The `tcposcrouter` command: flags and configuration file, logging, the event loop, signals
(SIGINT and SIGTERM stop the router, SIGHUP reloads the configuration file), and the `passwd`
subcommand."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import EX_CONFIG, ClusterRefused
from ..limits import Limits
from ..server.app import RouterServer
from ..server.config import DEFAULT_TRUSTED_PROXIES, ServerConfig
from ..server.handoff import WORKER_TOKEN_ENV, Handoff
from ..server.http.waiting import http_connection_cap
from ..server.tls import TlsConfig, TlsContext
from . import passwd
from .config import ConfigError, read_config
from .flags import LIMIT_FLAGS, build_parser
from .logs import LogSetup
from .startup_errors import cannot_listen, cannot_load_certificate

__all__ = ["LIMIT_FLAGS", "build_parser", "main", "parse_args"]

log = logging.getLogger("tcposcrouter")


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
            said = cannot_load_certificate(error, cert, settings.get("tls_key") or cert)
            print(f"{path}: tls_cert, tls_key: {said}", file=sys.stderr)
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
    if args.no_osc10 and args.no_osc11 and args.no_http:
        parser.error("--no-osc10, --no-osc11 and --no-http together leave nothing to listen on")
    if args.tls_key is not None and args.tls_cert is None:
        parser.error("--tls-key needs --tls-cert")
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
            osc10_port=None if args.no_tls_osc10 else args.tls_osc_port,
            osc11_port=None if args.no_tls_osc11 else args.tls_osc11_port,
        )
    return ServerConfig(
        hosts=args.host,
        osc10_port=None if args.no_osc10 else args.osc_port,
        osc11_port=None if args.no_osc11 else args.osc11_port,
        http_port=None if args.no_http else args.http_port,
        one_port=args.port,
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
        tls = server_config(args).tls
        said = str(error) if tls is None else cannot_load_certificate(error, tls.cert, tls.key)
        log.error("reload refused, the running settings stay: %s", said, extra={"console": True})
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
    connections = config.limits.max_connections
    raise_open_file_limit(connections and connections + http_connection_cap(connections))
    try:
        server = RouterServer(config)
    except (OSError, ssl.SSLError) as exc:
        tls = config.tls
        log.error("%s", exc if tls is None else cannot_load_certificate(exc, tls.cert, tls.key))
        return 1
    if config.cluster is not None:
        from ..cluster.node import ClusterNode, default_node_id  # redis-py only when used

        server.cluster = ClusterNode(server, config.cluster, config.node_id or default_node_id())
    server.handoff = Handoff.from_environment()  # a worker of --workers: groups live in one
    shared_token = os.environ.get(WORKER_TOKEN_ENV) if server.handoff is not None else None
    if shared_token:  # the supervisor's, one for every worker: it keeps the file
        server.admin_token = shared_token
    # The token's file is written before the ports open: whoever waits for a port can read it.
    token_file = None
    if config.http_port is not None and config.admin_token is None and not shared_token:
        token_file = write_admin_token(server.admin_token)
    try:
        return await _run(server, config, token_file, on_reload)
    finally:
        if token_file is not None:
            token_file.unlink(missing_ok=True)


async def _run(
    server: RouterServer,
    config: ServerConfig,
    token_file: Path | None,
    on_reload: Callable[[RouterServer], None] | None,
) -> int:
    """Open the ports, say where the pages are, and serve until SIGINT or SIGTERM."""
    try:
        addresses = await server.start()
    except OSError as exc:
        log.error("%s", cannot_listen(exc, config))
        await server.stop()
        return 1
    except ClusterRefused as refused:
        log.error("cannot join the cluster: %s", refused)
        return EX_CONFIG
    for address in addresses:
        log.info("listening on %s", address, extra={"console": True})
    if config.http_port is not None and server.handoff is None:  # --workers: the supervisor's
        say_where_the_pages_are(config, token_file)

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


def say_where_the_pages_are(config: ServerConfig, token_file: Path | None) -> None:
    """The browser client's address and the dashboard's, on the console at start-up."""
    host = (config.hosts or ["127.0.0.1"])[0]
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    site = f"{'http' if config.tls is None else 'https'}://{host}:{config.http_port}"
    log.info(
        "browser client (join a group from any browser): %s/client/", site, extra={"console": True}
    )
    if token_file is None:
        log.info("dashboard: %s/ (with the admin token you set)", site, extra={"console": True})
        return
    log.info(
        "dashboard with every name: %s/#token=… with the admin token in %s (made at "
        "start-up, readable by this user only; set one with --admin-token)",
        site,
        token_file,
        extra={"console": True},
    )


def supervise_workers(args: argparse.Namespace, arguments: list[str]) -> int:
    """--workers: one admin token made here for all of them, in a file as for one process."""
    from ..cluster.workers import supervise

    if args.no_http:
        return supervise(arguments, args.workers, args.node_id)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.admin_token is not None:
        say_where_the_pages_are(server_config(args), None)
        return supervise(arguments, args.workers, args.node_id)
    token = secrets.token_urlsafe(18)
    token_file = write_admin_token(token)
    say_where_the_pages_are(server_config(args), token_file)
    try:
        return supervise(arguments, args.workers, args.node_id, {WORKER_TOKEN_ENV: token})
    finally:
        token_file.unlink(missing_ok=True)


TOKEN_FILE_PREFIX = "tcposcrouter-admin-token-"


def _remove_stale_tokens(folder: Path) -> None:
    """Token files of this user's routers that were killed before they could remove theirs."""
    for path in folder.glob(f"{TOKEN_FILE_PREFIX}*"):
        pid = path.name.removeprefix(TOKEN_FILE_PREFIX)
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)  # that router is gone
        except OSError:
            continue  # alive under another user, or the file went meanwhile


def write_admin_token(token: str) -> Path:
    """Put an admin token made at start-up where only this user can read it: a secret on the
    console would end up in journals and screenshots. Removed when the router stops."""
    folder = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    _remove_stale_tokens(folder)
    path = folder / f"{TOKEN_FILE_PREFIX}{os.getpid()}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return path


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
        return supervise_workers(args, arguments)
    logs = LogSetup(args)
    loop_class = _loop_factory(args.event_loop)
    loop = loop_class() if loop_class is not None else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(
            serve(server_config(args), lambda server: reload(server, arguments, logs))
        )
    finally:
        loop.close()
