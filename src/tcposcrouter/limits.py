"""Every limit the router enforces, with the reason for its default, and the pure machinery
(token buckets, the failed-login throttle) that enforces them.

Times are seconds on any monotonic clock the caller chooses: nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .framing import DEFAULT_MAX_PACKET_SIZE

__all__ = ["Limits", "LoginThrottle", "TokenBucket"]


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


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; starts full."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, amount: float, now: float) -> bool:
        tokens = self._tokens
        if tokens < amount:
            tokens = min(self._burst, tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if tokens < amount:
                self._tokens = tokens
                return False
        self._tokens = tokens - amount
        return True


# Failed-login records kept at most: enough for a botnet's worth of addresses; the oldest are
# forgotten first, so the table never grows without bound.
_MAX_THROTTLE_RECORDS = 50_000
# A record is forgotten once its address has not failed for this long.
_THROTTLE_MEMORY_SECONDS = 600.0


class LoginThrottle:
    """Counts failed logins per source address and says how long an address must wait.

    After `allowed` failures an address is locked for 1 s, then 2, 4, ... up to `max_delay`,
    counted from its last failure. While locked, a register from it is refused without looking
    at the password, so guessing gains nothing; other addresses are not affected. A success does
    not clear the count (an attacker could otherwise clear it by logging into a group of their
    own between guesses); records are forgotten after ten quiet minutes.
    """

    def __init__(self, allowed: int, max_delay: float) -> None:
        self._allowed = allowed
        self._max_delay = max_delay
        self._records: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_needed(self, address: str, now: float) -> float:
        """Seconds `address` must still wait before a register is looked at; 0 if none."""
        record = self._records.get(address)
        if record is None:
            return 0.0
        failures, last = record
        if now - last > _THROTTLE_MEMORY_SECONDS:
            del self._records[address]
            return 0.0
        if failures < self._allowed:
            return 0.0
        delay = min(self._max_delay, 2.0 ** (failures - self._allowed))
        return max(0.0, last + delay - now)

    def failed(self, address: str, now: float) -> None:
        failures, _ = self._records.pop(address, (0, now))
        self._records[address] = (failures + 1, now)
        if len(self._records) > _MAX_THROTTLE_RECORDS:
            self._records.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
