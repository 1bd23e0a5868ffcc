"""The benchmark's yardstick: a minimal relay that only registers and copies bytes.

It is not a router (no validation, no auth, no limits, one group per name, no user lists): it is
the lower bound on what any Python router on this machine can cost, measured in the same run.
Per read it finds the end of the last complete length-prefixed frame and writes those bytes, as
they are, to every other connection of the group.

    python benchmarks/yardstick_relay.py PORT
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import cast

import uvloop

groups: dict[bytes, list[Relay]] = {}


class Relay(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.peers: list[Relay] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
        end, total = 0, len(data)
        while end + 4 <= total:
            size = int.from_bytes(data[end : end + 4], "big")
            if end + 4 + size > total:
                break
            if self.peers is None:  # the register: /oscrouter/register ,ssss[i] u p g gp id
                self.register(data[end + 4 : end + 4 + size])
                data, total, end = data[end + 4 + size :], total - end - 4 - size, 0
                continue
            end += 4 + size
        self.pending = data[end:]
        if end and self.peers is not None:
            chunk = data[:end]
            for peer in self.peers:
                if peer is not self and peer.transport is not None:
                    peer.transport.write(chunk)

    def register(self, packet: bytes) -> None:
        fields = packet.split(b"\x00")
        strings = [f for f in fields if f and not f.startswith(b",")][1:]
        user, group = strings[0], strings[2]
        random_id = int.from_bytes(packet[-4:], "big")
        self.peers = groups.setdefault(group, [])
        self.peers.append(self)
        address = b"/oscrouter/register/" + user + b"/" + str(random_id).encode()
        reply = address + b"\x00" * (4 - len(address) % 4) + b",\x00\x00\x00"
        assert self.transport is not None
        self.transport.write(len(reply).to_bytes(4, "big") + reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peers is not None:
            self.peers.remove(self)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Relay, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
