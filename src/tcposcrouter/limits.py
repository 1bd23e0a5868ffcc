"""Every limit the router enforces, with the reason for its default.

The machinery that enforces them lives in the core (`core.admission`, `core.rates`,
`core.throttle`, `core.outbox`); times are seconds on whatever monotonic clock the caller passes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_PACKET_SIZE", "Limits"]

# 1 MiB: far above any musical message and above the 64 KB code-sync documents the SuperCollider
# sharing tools send, yet small enough that a peer announcing a huge length cannot make the router
# reserve much memory (docs/protocol.md §1).
DEFAULT_MAX_PACKET_SIZE = 1 << 20


@dataclass(frozen=True)
class Limits:
    """The limits of one router. Zero switches a limit off where the field says so."""

    # See DEFAULT_MAX_PACKET_SIZE. Checked before anything is buffered.
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    # All connections. Each costs a file descriptor and a few KB; 10,000 fits a small VPS and
    # is far above any known ensemble server. At the limit the oldest connection that has not
    # registered yet is closed to make room; only when every one has registered is a new one
    # refused. 0: no limit.
    max_connections: int = 10_000
    # Registered connections from one IP address. A classroom behind one NAT is up to 100
    # laptops with two programs each (SuperCollider and Pd): 256 keeps them all with room to
    # spare, yet one host cannot take the whole server. 0: no limit.
    max_connections_per_address: int = 256
    # Connections from one IP address that have not registered yet. Every client registers
    # within a round trip of connecting, so a whole classroom rejoining at once holds a few
    # dozen for a moment; a program reconnecting in a loop or a scanner holds hundreds. At the
    # limit the *oldest* of them is closed to admit the new one, so a client that connects and
    # registers at once always gets in, whatever its neighbours do. 0: no limit.
    max_unregistered_per_address: int = 64
    # Seconds a connection may stay without registering. Every client registers right after
    # connecting (the SuperCollider client gives up after 3 s); a port scanner does not.
    register_timeout: float = 10.0
    # Seconds a registered connection may send nothing at all before it is closed. Off: a client
    # that only listens (a Pd patch driving visuals, a logger) never sends, and the original
    # router never closed one. A peer that vanished is found by `peer_timeout` instead. 0: off.
    idle_timeout: float = 0.0
    # Seconds the kernel may go without an answer from a peer (TCP keepalive probes unanswered,
    # or data sent and never acknowledged) before the connection is dropped as gone: a power
    # cut, a Wi-Fi that died, a path that eats large frames. The SuperCollider client pings
    # every 3 s and a laptop on a bad Wi-Fi can miss a few seconds of acknowledgements, so 45 s
    # (noticed after 45-60 s) never drops a live musician and frees a dead one's place well
    # within a song. 0: the kernel's defaults (minutes to a quarter of an hour).
    peer_timeout: float = 45.0
    # Seconds a connection the router has decided to close may take to send what is queued for
    # it (an error reply, mostly) before it is reset. It has left its group already; this only
    # bounds how long its socket lingers on a peer that does not read.
    close_grace: float = 3.0
    # Bytes waiting to be written to one connection before it is dropped as a slow consumer.
    # 2 MiB is about 25 s of a busy group (16 players x 50 messages/s x 100 B) for a receiver
    # that stalls, yet 1,000 stalled connections hold at most 2 GiB. 0: no limit.
    max_output_buffer: int = 2 * 1024 * 1024
    # Packets and bytes per second one connection may send, as token buckets that hold two
    # seconds' worth. Over budget, the router stops reading from the connection until the budget
    # has refilled: TCP then slows the sender's program, and nothing is dropped. A live coder
    # sends tens to hundreds of messages per second, a fast sensor stream (1 kHz, 3 axes) a few
    # thousand, so 5,000/s and a burst of 10,000 are never felt in music. 4 MiB/s (32 Mbit/s) is
    # more than most uplinks carry; its burst is held to half of `max_output_buffer` (1 MiB) so
    # that no burst makes a reading receiver a slow consumer: a patch dumping 5,000 messages of
    # 1 KB at once passes in about a second.
    # What a flooder costs the router is its rate times its group's size: at these limits one
    # connection into a group of 20 takes about 3% of what the router delivers on one core,
    # so it cannot starve the other groups. 0: off.
    rate_limit_packets: float = 5000.0
    rate_limit_bytes: float = 4 * 1024 * 1024
    # Users in one group, and groups on the server. A group is a band or a class: 256 players is
    # more than any known one; 1,000 groups fits a festival-sized public server. 0: no limit.
    max_users_per_group: int = 256
    max_groups: int = 1000
    # A group's state for late joiners (docs/protocol.md §13): the addresses kept, and their
    # messages' bytes in all. A shared editor's text, a mixer's faders and a few sequences fit
    # well within; a megabyte a group is what a public router can hold for a thousand groups.
    max_state_addresses: int = 1024
    max_state_bytes: int = 1_048_576
    # A place kept through a drop (docs/protocol.md §14): the most seconds a member's place is
    # held after its connection ends (a Wi-Fi blip, a laptop's lid), and the bytes of packets
    # kept for it unacknowledged, connected or held. A minute covers a venue's Wi-Fi coming
    # back; a megabyte is minutes of a busy ensemble's traffic. 0 seconds: no sessions.
    max_session_seconds: int = 60
    max_session_bytes: int = 1_048_576
    # Failed logins at one account (a user name in a group) from one address before that
    # address must wait for its next try at that account: 1, 2, 4 ... `login_max_delay` s. The
    # same number of failures at one account from anywhere puts the account's further checks
    # from addresses that failed at it at one per second. See core.throttle.LoginThrottle.
    login_failures_allowed: int = 5
    login_max_delay: float = 60.0
    # Distinct accounts one address may fail at (in ten minutes) before every register from it
    # waits 1, 2, 4 ... s. A classroom behind one NAT has a few students who mistype; someone
    # trying names and passwords across the server fails at dozens.
    login_accounts_per_address: int = 20

    def packet_burst(self) -> float:
        return 2 * self.rate_limit_packets

    def byte_burst(self) -> float:
        # Two seconds' worth, but at most half of what a receiver may have waiting: a sender's
        # burst arrives at every receiver at once, and a receiver reading as fast as it can must
        # never become a slow consumer for it. And at least one packet of the largest size, or
        # that packet could never pass.
        burst = 2 * self.rate_limit_bytes
        if self.max_output_buffer:
            burst = min(burst, self.max_output_buffer / 2)
        return max(burst, float(self.max_packet_size))
