"""A TCP relay that delays what passes through it, each way, as a long internet path does: this
kernel has no netem, so the round trip and its jitter are made here.

Each chunk read is written `one_way` seconds later, plus a jitter drawn uniformly from
±`jitter` — but never before the chunk ahead of it, since TCP keeps order: a late chunk holds
up the ones behind it, as a retransmission does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

__all__ = ["DelayRelay"]


class DelayRelay:
    def __init__(self, target_port: int, one_way: float, jitter: float, seed: int = 1) -> None:
        self._target = target_port
        self._one_way = one_way
        self._jitter = jitter
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers += [writer, up_writer]
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def later() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    dst.close()
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                dst.write(data)

        sender = asyncio.create_task(later())
        last_due = 0.0
        while True:
            data = await src.read(1 << 16)
            delay = self._one_way + self._random.uniform(-self._jitter, self._jitter)
            last_due = max(last_due, time.monotonic() + delay)
            queue.put_nowait((last_due, data))
            if not data:
                break
        await sender
