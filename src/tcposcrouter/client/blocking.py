"""The client for scripts: the asyncio client on an event loop in a thread of its own.

with BlockingClient("router.example.org:55555", "alice", "secret", "myband", "bandpass") as c:
    c.send("/note", 60, 0.5)
    packet = c.receive(timeout=1.0)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .aio import RouterClient
from .clock import ClockEstimate
from .protocol import Argument, Packet

__all__ = ["BlockingClient"]

T = TypeVar("T")


class BlockingClient:
    def __init__(
        self,
        server: str,
        user: str,
        password: str,
        group: str,
        group_password: str,
        **options: Any,
    ) -> None:
        """Connect and register (raises `RegisterRefused` or OSError as `RouterClient` does)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcposcrouter-client", daemon=True
        )
        self._thread.start()
        try:
            self._client = self._call(
                RouterClient.connect(server, user, password, group, group_password, **options)
            )
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def users(self) -> list[str]:
        return list(self._client.users)

    @property
    def connected(self) -> bool:
        return self._client.connected

    def send(self, address: str, *args: Argument) -> None:
        self._call(self._client.send(address, *args))

    def send_raw(self, packet: bytes) -> None:
        self._call(self._client.send_raw(packet))

    def send_bundle(self, packets: list[bytes], at: float | None = None) -> None:
        self._call(self._client.send_bundle(packets, at))

    def private(self, user: str, address: str, *args: Argument) -> None:
        self._call(self._client.private(user, address, *args))

    def sync_time(self, exchanges: int = 8) -> ClockEstimate:
        return self._call(self._client.sync_time(exchanges))

    def receive(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None after `timeout` seconds without one."""
        try:
            return self._call(asyncio.wait_for(self._client.receive(), timeout))
        except (TimeoutError, asyncio.TimeoutError):
            return None

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._client.close(), timeout=10)
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
