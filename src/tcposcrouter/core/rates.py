"""Rate budgets: how fast one connection may send, enforced by backpressure, not by drops.

A connection spends its budget on what it sends; when it has spent more than it has, the router
stops *reading* from it until the budget has refilled (the shell pauses its transport). Nothing
it sent is dropped: TCP flow control slows the sending program instead, exactly as a slow
network would. Each connection has one budget of packets and one of bytes.

Pure code: the caller passes the time.
"""

from __future__ import annotations

from ..errors import ErrorCode, RemoteError
from ..limits import Limits

__all__ = ["RateBudget", "TokenBucket"]


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; starts full. Spending more than it
    holds leaves it in debt, which the refill pays off first."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> float:
        # Refilled on every call, not only when it runs dry: a connection that waited a while
        # can never send more than one burst at once.
        tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens = tokens
        return tokens

    def spend(self, amount: float, now: float) -> float:
        """Spend `amount`; return the seconds until the bucket is out of debt (0: not in debt)."""
        tokens = self._refill(now) - amount
        self._tokens = tokens
        return -tokens / self._rate if tokens < 0 else 0.0

    def full(self, now: float) -> bool:
        return self._refill(now) >= self._burst


class RateBudget:
    """The packet and byte buckets of one connection, and its current *episode*: the time from
    its first pause until it has been within its budget long enough to fill it again. A sender
    gets one notice and the log one line per episode, not one per pause."""

    __slots__ = ("_bytes", "_packets", "episode_pauses", "episode_seconds")

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
        self.episode_pauses = 0  # 0: not in an episode
        self.episode_seconds = 0.0

    @staticmethod
    def needed(limits: Limits) -> bool:
        return limits.rate_limit_packets > 0 or limits.rate_limit_bytes > 0

    def spend(self, packets: int, size: int, now: float) -> float:
        """Spend what one read brought; return how long reading must pause (0: read on)."""
        pause = 0.0
        if self._packets is not None:
            pause = self._packets.spend(packets, now)
        if self._bytes is not None:
            pause = max(pause, self._bytes.spend(size, now))
        if pause > 0:
            self.episode_pauses += 1
            self.episode_seconds += pause
        return pause

    def episode_over(self, now: float) -> bool:
        """True once, when an episode ends: both buckets are full again."""
        if not self.episode_pauses:
            return False
        if (self._packets is None or self._packets.full(now)) and (
            self._bytes is None or self._bytes.full(now)
        ):
            self.episode_pauses = 0
            self.episode_seconds = 0.0
            return True
        return False

    @staticmethod
    def notice(limits: Limits) -> RemoteError:
        """The one reply of an episode. Not fatal, and nothing was dropped."""
        detail = (
            f"sending faster than {limits.rate_limit_packets:g} packets or "
            f"{limits.rate_limit_bytes:g} bytes per second: the router reads more slowly from "
            "this connection for a while; nothing is dropped"
        )
        return RemoteError(ErrorCode.RATE_LIMITED, detail)
