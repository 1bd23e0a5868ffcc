"""Admission: how many connections the router holds, in all and per source address.

Pure code.
"""

from __future__ import annotations

from ..errors import ErrorCode, RemoteError
from ..limits import Limits

__all__ = ["Admission"]


class Admission:
    """Counts open connections and says which new one must be refused (with `server_full`)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._total = 0
        self._per_address: dict[str, int] = {}

    def admit(self, address: str) -> RemoteError | None:
        """Count a new connection from `address`; return its refusal, or None if it may stay.

        A refused connection is counted too, until `release`: it holds a socket like any other.
        """
        limits = self._limits
        from_address = self._per_address.get(address, 0)
        refusal = None
        if limits.max_connections and self._total >= limits.max_connections:
            refusal = _server_full(f"the router has {self._total} connections")
        elif limits.max_connections_per_address and (
            from_address >= limits.max_connections_per_address
        ):
            refusal = _server_full(f"{from_address} connections from your address")
        self._total += 1
        self._per_address[address] = from_address + 1
        return refusal

    def release(self, address: str) -> None:
        remaining = self._per_address[address] - 1
        if remaining:
            self._per_address[address] = remaining
        else:
            del self._per_address[address]
        self._total -= 1

    def connections(self) -> int:
        return self._total

    def connections_from(self, address: str) -> int:
        return self._per_address.get(address, 0)


def _server_full(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.SERVER_FULL, detail, fatal=True)
