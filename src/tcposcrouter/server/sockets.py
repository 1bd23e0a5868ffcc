"""The kernel's side of a socket, shared by the TCP and WebSocket shells (and the cluster's own
connection for packets): the options a public router sets, a reset, peer names, and the
round-trip time the kernel measures (for the dashboard).

Not pure (it sets and reads socket options), but it holds no state.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import sys

from ..limits import Limits

__all__ = [
    "ACCEPTED_INHERIT_OPTIONS",
    "KEEPALIVE_COUNT",
    "format_peer",
    "peer_host",
    "reset",
    "round_trip_ms",
    "tune_socket",
]

# Unanswered keepalive probes after which the kernel gives a silent peer up.
KEEPALIVE_COUNT = 3
# On Linux a connection accepted from a listener starts with the listener's options (TCP_NODELAY,
# keepalive and TCP_USER_TIMEOUT included): the OSC ports' listeners are tuned once, and a
# thousand clients connecting at once cost no setsockopt each. Elsewhere each one is tuned.
ACCEPTED_INHERIT_OPTIONS = sys.platform == "linux"


def tune_socket(transport_socket: socket.socket | None, limits: Limits) -> None:
    """Set up a TCP socket, accepted or listening (IPv4 or IPv6; others, such as Unix sockets,
    are left)."""
    if transport_socket is None or transport_socket.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return
    # The transport's socket may be a stand-in (uvloop's) that wraps the descriptor anew for
    # every option set: one wrapping for all of them took 0.085 s instead of 0.151 s for 3,000
    # connections in a profiled storm, which a thousand clients connecting at once notice.
    sock = socket.socket(fileno=transport_socket.fileno())
    try:
        _tune(sock, limits)
    finally:
        sock.detach()  # the descriptor stays the transport's


def _tune(sock: socket.socket, limits: Limits) -> None:
    # Musicians' messages are small and late is wrong: never wait to fill a segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A peer that vanished (no FIN, no RST) is found by the kernel, within `peer_timeout`:
    # keepalive probes find it while nothing is being sent, and TCP_USER_TIMEOUT while data
    # waits unacknowledged (keepalive sends no probe then, and retransmission alone would
    # take a quarter of an hour). A listener that never sends is kept: its kernel answers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    timeout = limits.peer_timeout
    if not timeout:
        return
    probe_every = max(1, math.ceil(timeout / (KEEPALIVE_COUNT + 1)))
    for option, value in (
        ("TCP_KEEPIDLE", probe_every),
        ("TCP_KEEPINTVL", probe_every),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", math.ceil(timeout * 1000)),
    ):
        if hasattr(socket, option):  # Linux has all four; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def reset(transport: asyncio.Transport) -> None:
    """Reset the connection rather than close it: a plain close leaves the kernel trying to
    deliver megabytes to a reader that does not read, for minutes; a reset frees them at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None and not transport.is_closing():
        # A transport already closing may have given its file descriptor back (uvloop's
        # pseudo-socket then raises ValueError): it needs no reset, only the abort.
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def peer_host(peername: object) -> str | None:
    """The host of an IP socket address (what per-address limits count); None for others."""
    return str(peername[0]) if isinstance(peername, tuple) else None


def format_peer(peername: object) -> str:
    """ "host:port" of a socket address, "[v6host]:port" for IPv6."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)


# struct tcp_info (linux/tcp.h): eight one-byte fields, then 32-bit fields of which tcpi_rtt
# and tcpi_rttvar, in microseconds, are the 16th and 17th: bytes 68 to 76. The kernel has only
# ever appended to the struct, so these offsets hold on every Linux since 2.6.
_RTT_OFFSET = 68
_READ = 104  # what the struct held in Linux 4.x: enough for the fields read here


def round_trip_ms(sock: socket.socket | None) -> tuple[float, float] | None:
    """(smoothed round-trip time, its mean deviation) in milliseconds, or None where the
    system does not tell (not Linux, not TCP, closed)."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _READ)
    except OSError:
        return None
    if len(info) < _RTT_OFFSET + 8:
        return None
    rtt, rttvar = struct.unpack_from("II", info, _RTT_OFFSET)
    return rtt / 1000.0, rttvar / 1000.0
