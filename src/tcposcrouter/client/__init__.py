"""A client for tcposcrouter: the sans-I/O protocol, NTP-style clock estimation, an asyncio
client and a blocking wrapper. It reuses the router's `osc` package, never the server.
One line a module:

    protocol.py   the client's protocol as a pure object: bytes in, events out
    clock.py      NTP's offset and round trip from time exchanges (pure)
    group_clock.py  the group's beat on this machine: tempo lines through the offset (pure)
    aio.py        RouterClient: asyncio, TCP or WebSocket, pings, resumes or reconnects;
                  the group clock and state kept current
    link.py       where --server points; the TCP, TLS or WebSocket link, opened
    diagnosis.py  why a connection failed, in one line with the fix (pure)
    blocking.py   BlockingClient: the same on a loop in a thread, for scripts
    text.py       messages as text: the command line's syntax, what listen prints
    recording.py  the record/replay file format (pure)
"""

from .aio import RouterClient
from .blocking import BlockingClient
from .clock import ClockEstimate
from .diagnosis import CannotConnect
from .group_clock import GroupClock
from .protocol import Packet, RegisterRefused

__all__ = [
    "BlockingClient",
    "CannotConnect",
    "ClockEstimate",
    "GroupClock",
    "Packet",
    "RegisterRefused",
    "RouterClient",
]
