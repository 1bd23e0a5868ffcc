"""Every limit the router enforces, with the reason for its default.

The machinery that enforces them lives in the core (`core.admission`, `core.rates`,
`core.login`, `core.outbox`); times are seconds on whatever monotonic clock the caller passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .osc.framing import DEFAULT_MAX_PACKET_SIZE

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """The limits of one router. Zero switches a limit off where the field says so."""

    # See framing.DEFAULT_MAX_PACKET_SIZE. Checked before anything is buffered.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    # All connections. Each costs a file descriptor and a few KB; 10,000 fits a small VPS and
    # is far above any known ensemble server. 0: no limit.
    max_connections: int = 10_000
    # Connections from one IP address. A classroom behind one NAT can be 30-40 laptops, each
    # maybe with two connections (SuperCollider and Pd); 64 keeps them all and stops one host
    # from taking the whole server. 0: no limit.
    max_connections_per_address: int = 64
    # Seconds a connection may stay without registering. Every client registers right after
    # connecting (the SuperCollider client gives up after 3 s); a port scanner does not.
    register_timeout: float = 10.0
    # Seconds a registered connection may send nothing at all. The SuperCollider client pings
    # every 3 s, so 60 s is 20 missed pings: a laptop that went to sleep or a dead Wi-Fi. 0: off.
    idle_timeout: float = 60.0
    # Bytes waiting to be written to one connection before it is dropped as a slow consumer.
    # 2 MiB is about 25 s of a busy group (16 players x 50 messages/s x 100 B) for a receiver
    # that stalls, yet 1,000 stalled connections hold at most 2 GiB. 0: no limit.
    max_output_buffer: int = 2 * 1024 * 1024
    # Packets and bytes per second one connection may send, as token buckets that allow a burst
    # of two seconds' worth. A live coder sends tens to hundreds of messages per second and a
    # fast sensor stream a few thousand; 2,000/s and 2 MiB/s are far above a player and far below
    # what one connection could make the router fan out. 0: off.
    rate_limit_packets: float = 2000.0
    rate_limit_bytes: float = 2 * 1024 * 1024
    # Users in one group, and groups on the server. A group is a band or a class: 256 players is
    # more than any known one; 1,000 groups fits a festival-sized public server. 0: no limit.
    max_users_per_group: int = 256
    max_groups: int = 1000
    # Failed logins from one address before it must wait, and the longest wait. The wait doubles
    # with every further failure: 1, 2, 4 ... 60 s.
    login_failures_allowed: int = 5
    login_max_delay: float = 60.0

    def packet_burst(self) -> float:
        return 2 * self.rate_limit_packets

    def byte_burst(self) -> float:
        # A burst must hold at least one packet of the largest size, or that packet never passes.
        return max(2 * self.rate_limit_bytes, float(self.max_packet_size))
