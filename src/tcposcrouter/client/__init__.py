"""A client for tcposcrouter: the sans-I/O protocol, NTP-style clock estimation, an asyncio
client and a blocking wrapper. It reuses the router's `osc` package, never the server."""

from .aio import RouterClient
from .blocking import BlockingClient
from .clock import ClockEstimate
from .diagnosis import CannotConnect
from .protocol import Packet, RegisterRefused

__all__ = [
    "BlockingClient",
    "CannotConnect",
    "ClockEstimate",
    "Packet",
    "RegisterRefused",
    "RouterClient",
]
