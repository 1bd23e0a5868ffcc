"""The asyncio client: one connection to a router (TCP in either framing, or WebSocket), kept up.

    client = await RouterClient.connect("router.example.org:55555", "alice", "secret",
                                        "myband", "bandpass")
    await client.send("/note", 60, 0.5)
    async for packet in client:
        print(packet.address, packet.args)

All protocol logic is `ClientProtocol`'s; this class moves bytes, keeps the connection alive
(pings, reconnecting with backoff and registering again), and hands packets out in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import ErrorCode, RouterError
from .clock import ClockEstimate
from .diagnosis import CannotConnect, Target
from .link import Link, closed_unanswered, open_link, parse_server, target_of
from .protocol import (
    Argument,
    ClientProtocol,
    NotOsc,
    Packet,
    Refused,
    Registered,
    RegisterRefused,
    RouterErrorReply,
    TempoLine,
    TimeReply,
    UserList,
    build_bundle,
    build_message,
)

__all__ = ["DEFAULT_SERVER", "CannotConnect", "NotConnected", "RouterClient", "parse_server"]

log = logging.getLogger("tcposcrouter.client")

DEFAULT_SERVER = "127.0.0.1:55555"
# The SuperCollider client pings every 3 s; so does this one (the router needs none, but a
# NAT or a proxy that forgets silent connections does).
PING_SECONDS = 3.0
# Reconnecting: wait 0.5 s, then twice as long each time, at most 10 s.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
# Packets received but not yet taken by the program: beyond this the client stops reading, and
# the router's slow-consumer rule applies to it as to any reader.
INBOX_PACKETS = 10_000
REGISTER_SECONDS = 10.0


class _ClosedUnanswered(ConnectionError):
    """The connection ended before the register was answered (`_join` says what it was)."""


class NotConnected(ConnectionError):
    """A send while the connection is down (the client is reconnecting, or closed)."""


def _succeeded(register: asyncio.Future[None] | None) -> bool:
    return (
        register is not None
        and register.done()
        and not register.cancelled()
        and (register.exception() is None)
    )


class RouterClient:
    """A member of one group on one router. Make it with `connect`."""

    def __init__(
        self,
        server: str,
        user: str,
        password: str,
        group: str,
        group_password: str,
        *,
        reconnect: bool = True,
        ping_seconds: float = PING_SECONDS,
        clock: Callable[[], float] = time.time,
        on_users: Callable[[list[str]], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_tempo: Callable[[TempoLine], None] | None = None,
    ) -> None:
        self.server = server
        self._credentials = (user, password, group, group_password)
        self.reconnect = reconnect
        self._ping_seconds = ping_seconds
        self._clock = clock  # the local clock the time service is compared with
        self.on_users = on_users
        self.on_reconnect = on_reconnect
        self.on_error = on_error
        self.on_tempo = on_tempo
        # The group's tempo as the router last told it (docs/protocol.md §11): a change sent
        # ahead of its beat is told at once, so a caller keeps the line in force until `t0`.
        self.tempo: TempoLine | None = None
        self.clock = ClockEstimate()
        self.users: list[str] = []
        self.connected = False
        self._link: Link | None = None
        self._protocol: ClientProtocol | None = None
        self._inbox: asyncio.Queue[Packet | BaseException] = asyncio.Queue(INBOX_PACKETS)
        self._registered: asyncio.Future[None] | None = None
        self._time_replies: asyncio.Queue[tuple[TimeReply, float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def user(self) -> str:
        return self._credentials[0]

    @property
    def group(self) -> str:
        return self._credentials[2]

    @classmethod
    async def connect(
        cls,
        server: str,
        user: str,
        password: str,
        group: str,
        group_password: str,
        **options: Any,
    ) -> RouterClient:
        """Connect and register; raise `RegisterRefused` (with the router's code) or OSError."""
        client = cls(server, user, password, group, group_password, **options)
        await client._join()
        client._tasks.append(asyncio.create_task(client._keep_alive()))
        return client

    async def _join(self) -> None:
        target = target_of(self.server)
        link, framing = await open_link(target)
        protocol = ClientProtocol(framing)
        self._link, self._protocol = link, protocol
        self._registered = registered = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(self._read(link, protocol, target))
        try:
            await link.send(protocol.register(*self._credentials))
            await asyncio.wait_for(asyncio.shield(registered), REGISTER_SECONDS)
        except BaseException as error:
            # Close first: the reader then sees the end and stops by itself (cancelling it
            # while the stream closes can cancel the close).
            self._link = None
            await link.close()
            reader.cancel()
            if registered.done() and not registered.cancelled():
                registered.exception()  # an outcome that came too late is not an error to log
            if isinstance(error, asyncio.TimeoutError):
                raise target.unanswered(REGISTER_SECONDS) from None
            if isinstance(error, OSError) and not isinstance(error, CannotConnect):
                raise await closed_unanswered(target) from None  # _ClosedUnanswered, or a send
            raise
        # Finished readers and reconnects are dropped: a laptop that sleeps every night for a
        # month must not collect them.
        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(reader)
        self.connected = True

    async def _read(self, link: Link, protocol: ClientProtocol, target: Target) -> None:
        """Feed the protocol until the connection ends; then reconnect, or end the inbox."""
        while (data := await link.receive()) is not None:
            received_at = self._clock()
            try:
                events = protocol.receive_data(data)
            except RouterError as broken:  # bytes the framing cannot split: the stream is lost
                log.warning("%s sent a broken stream (%s); closing", self.server, broken)
                break
            for event in events:
                if isinstance(event, NotOsc):
                    self._register_failed(target.first_bytes(event.speaks))
                    return
                await self._handle(event, received_at, target)
        self._register_failed(_ClosedUnanswered())  # if it was still waiting for its reply
        registered = self._registered
        if self._closing or self._link is not link or not _succeeded(registered):
            return  # closed on purpose, or a register that failed (`_join` says why)
        self.connected = False
        self._link = None
        await link.close()
        if self.reconnect:
            log.warning("connection to %s lost; reconnecting", self.server)
            self._tasks.append(asyncio.create_task(self._reconnect()))
        else:
            await self._inbox.put(ConnectionError("the router closed the connection"))

    def _register_failed(self, error: BaseException) -> None:
        registered = self._registered
        if registered is not None and not registered.done():
            registered.set_exception(error)

    async def _handle(self, event: object, received_at: float, target: Target) -> None:
        if isinstance(event, Packet):
            await self._inbox.put(Packet(event.raw, received_at))
        elif isinstance(event, UserList):
            self.users = event.names
            if self.on_users is not None:
                self.on_users(list(event.names))
        elif isinstance(event, Registered):
            if self._registered is not None and not self._registered.done():
                self._registered.set_result(None)
        elif isinstance(event, Refused):
            if event.code == ErrorCode.WRONG_PORT:  # not a refusal: the wrong door
                self._register_failed(target.wrong_port(event.detail))
            else:
                self._register_failed(RegisterRefused(event.code, event.detail))
        elif isinstance(event, TimeReply):
            await self._time_replies.put((event, received_at))
        elif isinstance(event, TempoLine):
            self.tempo = event
            if self.on_tempo is not None:
                self.on_tempo(event)
        elif isinstance(event, RouterErrorReply):
            log.info("router says %s: %s", event.code, event.detail)
            if self.on_error is not None:
                self.on_error(event.code, event.detail)

    async def _reconnect(self) -> None:
        wait = BACKOFF_FIRST
        while not self._closing:
            await asyncio.sleep(wait)
            try:
                await self._join()
            except RegisterRefused as refused:
                log.error("the router refused to register again: %s", refused)
                await self._inbox.put(refused)
                return
            except (OSError, asyncio.TimeoutError) as exc:
                if isinstance(exc, CannotConnect) and exc.lasting:
                    log.error("%s", exc)  # the address itself is wrong now: trying is no use
                    await self._inbox.put(exc)
                    return
                log.info("reconnecting to %s: %s; again in %.1f s", self.server, exc, wait)
                wait = min(BACKOFF_MAX, wait * 2)
                continue
            log.warning("reconnected to %s", self.server)
            if self.on_reconnect is not None:
                self.on_reconnect()
            return

    async def _keep_alive(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._ping_seconds)
            if self.connected:
                with contextlib.suppress(NotConnected, ConnectionError, OSError):
                    await self.send_raw(build_message("/oscrouter/ping", ("s", self.user)))

    # -- sending ------------------------------------------------------------------------------

    async def send_raw(self, packet: bytes) -> None:
        """Send one OSC packet as it is."""
        link, protocol = self._link, self._protocol
        if not self.connected or link is None or protocol is None:
            raise NotConnected(f"not connected to {self.server}")
        await link.send(protocol.frame(packet))

    async def send(self, address: str, *args: Argument) -> None:
        """Send a message to everyone else in the group."""
        await self.send_raw(build_message(address, *args))

    async def send_bundle(self, packets: list[bytes], at: float | None = None) -> None:
        """Send a bundle of packets (built with `build_message`), for Unix time `at` (this
        machine's clock; see `to_group`) or immediately."""
        await self.send_raw(build_bundle(packets, at))

    async def private(self, user: str, address: str, *args: Argument) -> None:
        """Send a message to `user` alone."""
        await self.send("/oscrouter/private", ("s", user), ("s", address), *args)

    # -- time ---------------------------------------------------------------------------------

    async def sync_time(self, exchanges: int = 8, timeout: float = 2.0) -> ClockEstimate:
        """Ask the router's time `exchanges` times; `self.clock` then holds the estimate."""
        protocol = self._protocol
        for _ in range(exchanges):
            link = self._link
            if link is None or protocol is None or not self.connected:
                raise NotConnected(f"not connected to {self.server}")
            sent = self._clock()
            await link.send(protocol.time_request(sent))
            while True:
                reply, received = await asyncio.wait_for(self._time_replies.get(), timeout)
                if abs(reply.client_time - sent) < 1e-6:
                    break  # a late answer to an earlier request is skipped
            self.clock.add(sent, reply.server_receive, reply.server_send, received)
        return self.clock

    # -- receiving ----------------------------------------------------------------------------

    async def receive(self) -> Packet:
        """The next packet from the group; raises what ended the connection for good."""
        item = await self._inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def __aiter__(self) -> RouterClient:
        return self

    async def __anext__(self) -> Packet:
        try:
            return await self.receive()
        except (ConnectionError, RegisterRefused) as ended:
            if self._closing:
                raise StopAsyncIteration from None
            raise ended

    async def close(self) -> None:
        self._closing = True
        self.connected = False
        for task in self._tasks:
            task.cancel()
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._inbox.put(ConnectionError("closed"))

    async def __aenter__(self) -> RouterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
