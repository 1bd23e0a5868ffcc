"""Rate budgets: how many packets and bytes per second one connection may send.

Pure code: the caller passes the time.
"""

from __future__ import annotations

from ..errors import ErrorCode, RemoteError
from ..limits import Limits

__all__ = ["DROP", "DROP_AND_TELL", "PASS", "RateBudget", "TokenBucket"]

# What `RateBudget.take` says of a packet.
PASS, DROP, DROP_AND_TELL = 0, 1, 2


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; starts full."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, amount: float, now: float) -> bool:
        # Refill on every call, not only when the bucket runs dry: a connection that waited a
        # while must not be able to send more than one burst at once.
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if tokens < amount:
            self._tokens = tokens
            return False
        self._tokens = tokens - amount
        return True


class RateBudget:
    """The packet and byte buckets of one connection, and whether it is in an episode of
    dropped packets (so that it gets one reply per episode, not one per packet)."""

    __slots__ = ("_bytes", "_packets", "exceeded")

    def __init__(self, limits: Limits, now: float) -> None:
        self._packets = (
            TokenBucket(limits.rate_limit_packets, limits.packet_burst(), now)
            if limits.rate_limit_packets > 0
            else None
        )
        self._bytes = (
            TokenBucket(limits.rate_limit_bytes, limits.byte_burst(), now)
            if limits.rate_limit_bytes > 0
            else None
        )
        self.exceeded = False

    @staticmethod
    def needed(limits: Limits) -> bool:
        return limits.rate_limit_packets > 0 or limits.rate_limit_bytes > 0

    def allows(self, size: int, now: float) -> bool:
        """Take one packet of `size` bytes from the budget; False if it must be dropped."""
        packets, byte_bucket = self._packets, self._bytes
        return (packets is None or packets.take(1, now)) and (
            byte_bucket is None or byte_bucket.take(size, now)
        )

    def take(self, size: int, now: float) -> int:
        """PASS, DROP, or DROP_AND_TELL for the first packet dropped in an episode (the sender
        gets one reply per episode, not one per packet)."""
        if self.allows(size, now):
            self.exceeded = False
            return PASS
        if self.exceeded:
            return DROP
        self.exceeded = True
        return DROP_AND_TELL

    @staticmethod
    def refusal(limits: Limits) -> RemoteError:
        detail = (
            f"more than {limits.rate_limit_packets:g} packets or "
            f"{limits.rate_limit_bytes:g} bytes per second: packets dropped"
        )
        return RemoteError(ErrorCode.RATE_LIMITED, detail)
