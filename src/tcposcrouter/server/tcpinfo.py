"""The round-trip time of a TCP connection as the kernel measures it (Linux `TCP_INFO`)."""

from __future__ import annotations

import socket
import struct

__all__ = ["round_trip_ms"]

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
