"""The listening sockets: the OSC ports (plain and TLS, framing detected from the first byte)
and the HTTP port, opened with the options a public router needs."""

from __future__ import annotations

import asyncio
import ssl

from ..limits import Limits
from .config import ServerConfig, osc_ports
from .running import RunningRouter
from .sockets import format_peer, tune_socket
from .tcp import TcpConnection

__all__ = ["LISTEN_BACKLOG", "open_osc_ports", "tune_listeners"]

# Connections the kernel may hold completed but not yet accepted. asyncio's default of 100 drops
# the SYNs of a reconnection storm (a whole festival's clients after a router restart), which the
# clients then retry only after a second; the kernel caps this at net.core.somaxconn anyway.
LISTEN_BACKLOG = 4096


def _osc_ports(config: ServerConfig) -> list[tuple[int, str, bool]]:
    """(port, what it is, over TLS) of every OSC port to open."""
    return [
        (p.port, f"OSC {p.version} {p.framing}" + (" over TLS" if p.tls else ""), p.tls)
        for p in osc_ports(config)
    ]


async def open_osc_ports(
    router: RunningRouter, tls: ssl.SSLContext | None
) -> tuple[list[asyncio.base_events.Server], list[str]]:
    """Listen on every OSC port of the router's configuration; return the listeners and, for
    the console, the addresses listened on."""
    loop = asyncio.get_running_loop()
    config = router.config
    listeners: list[asyncio.base_events.Server] = []
    addresses: list[str] = []
    for port, label, secure in _osc_ports(config):
        listener = await loop.create_server(
            lambda: TcpConnection(router),
            host=config.hosts,
            port=port,
            reuse_address=True,
            reuse_port=config.reuse_port or None,
            backlog=LISTEN_BACKLOG,
            ssl=tls if secure else None,
            # A handshake that does not finish is a connection that never registers.
            ssl_handshake_timeout=(config.limits.register_timeout or 10.0) if secure else None,
        )
        listeners.append(listener)
        for sock in listener.sockets:
            addresses.append(f"{format_peer(sock.getsockname())} ({label}; framing auto-detected)")
    tune_listeners(listeners, config.limits)
    return listeners, addresses


def tune_listeners(listeners: list[asyncio.base_events.Server], limits: Limits) -> None:
    """Set the socket options the listeners' connections inherit (server/sockets.py): at the
    start, and on a reload for the connections to come."""
    for listener in listeners:
        for sock in listener.sockets:
            tune_socket(sock, limits)
