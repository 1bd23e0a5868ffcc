"""The asyncio client: one connection to a router (TCP in either framing, or WebSocket), kept up.

    client = await RouterClient.connect("router.example.org:55555", "alice", "secret",
                                        "myband", "bandpass")
    await client.send("/note", 60, 0.5)
    async for packet in client:
        print(packet.address, packet.args)

All protocol logic is `ClientProtocol`'s; this class moves bytes, keeps the connection alive
(pings, reconnecting with backoff), and hands packets out in order.

It asks the router for a session (docs/protocol.md §14) and acknowledges what it receives as it
goes, so that after a drop it resumes its place: nobody sees it leave, and the packets of the
gap arrive, in order, none twice. Where it cannot resume (an old router, the place ended, another
router of the `server` list), it registers again. `server` may list several routers ("a:55555,
b:55555"): a reconnect tries them in turn, starting with the one it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import ErrorCode, RouterError
from ..osc.state import wrap_state
from .clock import ClockEstimate
from .diagnosis import CannotConnect, Target
from .group_clock import GroupClock
from .link import Link, closed_unanswered, open_link, parse_server, target_of
from .protocol import (
    Argument,
    ClientProtocol,
    NotOsc,
    Packet,
    Refused,
    Registered,
    RegisterRefused,
    Resumed,
    ResumeFailed,
    RouterErrorReply,
    SessionGranted,
    StateBegin,
    StateCleared,
    StateEnd,
    StateValue,
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
# The place the client asks the router to keep after a drop, and how often it acknowledges
# what it received: every half second, or every 200 packets in a busy stream, so that the
# router keeps little for it (its bound is a megabyte by default).
SESSION_SECONDS = 30
ACK_SECONDS = 0.5
ACK_PACKETS = 200
# The group clock's offset is measured on joining and again this often: a laptop's clock drifts
# by tens of microseconds a second, and NTP may step it.
CLOCK_REFRESH_SECONDS = 30.0
# Exchanges a refresh makes (one after another: 2 s over a 40 ms path), all that the estimate
# keeps (client/clock.py).
CLOCK_EXCHANGES = 48


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
        session_seconds: int = SESSION_SECONDS,
        clock_refresh: float = CLOCK_REFRESH_SECONDS,
    ) -> None:
        # Every router to try, in order; `server` is the one in use.
        self.servers = [one.strip() for one in server.split(",") if one.strip()] or [server]
        self.server = self.servers[0]
        self._credentials = (user, password, group, group_password)
        # The session asked for (0: none), the token granted, and how the last (re)connect
        # went: True once it resumed a kept place rather than registering anew.
        self.session_seconds = session_seconds
        self.session_token = ""
        self.resumed = False
        self._session_asked = False  # (its answer may still be on its way at a close)
        self._following = False  # the state's changes, on the connection in use
        self._received = 0  # the last packet number counted, carried to the next connection
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
        # The group's beat on this machine (docs/protocol.md §11): the tempo through `clock`.
        self.group_clock = GroupClock(self.clock)
        self._clock_refresh = clock_refresh
        self._time_lock = asyncio.Lock()  # one run of time exchanges at a time
        # The group's state (docs/protocol.md §13), by address, kept current: the client
        # follows the changes where the router keeps a state.
        self.state: dict[str, Packet] = {}
        # Set once the router has told the tempo, and the whole state (a router older than
        # either never does).
        self.tempo_told = asyncio.Event()
        self.state_told = asyncio.Event()
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
        """Connect and register (to the first of the routers listed in `server` that answers);
        raise `RegisterRefused` (with the router's code) or OSError."""
        client = cls(server, user, password, group, group_password, **options)
        for index, one in enumerate(client.servers):  # the first that answers
            client.server = one
            try:
                await client._join()
                break
            except (OSError, asyncio.TimeoutError) as exc:
                if index == len(client.servers) - 1:
                    raise
                log.warning("%s: %s; trying %s", one, exc, client.servers[index + 1])
        client._tasks.append(asyncio.create_task(client._keep_alive()))
        return client

    async def _join(self) -> None:
        """Connect to `self.server` and resume the kept place if there is one, else register;
        then ask for a session. A router that refuses the resume outright (one older than
        sessions closes the connection) is connected to again, to register."""
        if not self.session_token:
            await self._join_once(resuming=False)
            return
        try:
            await self._join_once(resuming=True)
        except RegisterRefused as refused:
            log.info("%s refused the resume (%s); registering anew", self.server, refused.code)
            self.session_token = ""
            await self._join_once(resuming=False)

    async def _join_once(self, resuming: bool) -> None:
        target = target_of(self.server)
        link, framing = await open_link(target)
        protocol = ClientProtocol(framing)
        self._link, self._protocol = link, protocol
        self._registered = registered = asyncio.get_running_loop().create_future()
        # A resumed place follows the state still; a new register starts not following.
        self._following = self._following and resuming
        reader = asyncio.create_task(self._read(link, protocol, target))
        try:
            if resuming:
                await link.send(protocol.resume(self.group, self.session_token, self._received))
            else:
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
        self.resumed = resuming and bool(self.session_token)
        self.connected = True
        # (a long-lived client: a one-shot send has no use for the group clock)
        refreshing = any(task.get_name() == "clock" for task in self._tasks)
        if self.reconnect and self._clock_refresh and not refreshing:
            self._tasks.append(asyncio.create_task(self._refresh_clock(), name="clock"))
        if self.reconnect and self.session_seconds and not self.resumed:
            # (one that does not reconnect has no use for a kept place)
            await link.send(protocol.session_request(self.session_seconds))
            self._session_asked = True

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
                if isinstance(event, StateBegin):
                    self.state.clear()  # the whole state follows
                    if not self._following:  # this router keeps a state: follow it
                        self._following = True
                        for packet in protocol.follow_state():
                            await link.send(packet)
                    continue
                if isinstance(event, ResumeFailed):  # register on the same connection
                    log.info("%s cannot resume (%s); registering anew", self.server, event.detail)
                    self.session_token = ""
                    await link.send(protocol.register(*self._credentials))
                    continue
                await self._handle(event, received_at, target)
            if protocol.numbering and protocol.received - protocol.acked >= ACK_PACKETS:
                with contextlib.suppress(OSError):
                    await link.send(protocol.ack())
        self._received = protocol.received  # where a resume takes up the numbering
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
        elif isinstance(event, (Registered, Resumed)):
            if self._registered is not None and not self._registered.done():
                self._registered.set_result(None)
        elif isinstance(event, SessionGranted):
            self.session_token = event.token
        elif isinstance(event, Refused):
            if event.code == ErrorCode.WRONG_PORT:  # not a refusal: the wrong door
                self._register_failed(target.wrong_port(event.detail))
            else:
                self._register_failed(RegisterRefused(event.code, event.detail))
        elif isinstance(event, TimeReply):
            await self._time_replies.put((event, received_at))
        elif isinstance(event, StateValue):
            self.state[event.address] = event.packet
            if event.hand_on:
                await self._inbox.put(Packet(event.packet.raw, received_at))
        elif isinstance(event, StateCleared):
            self.state.pop(event.address, None)
        elif isinstance(event, StateEnd):
            self.state_told.set()
        elif isinstance(event, TempoLine):
            self.group_clock.told(event)
            self.tempo = event
            self.tempo_told.set()
            if self.on_tempo is not None:
                self.on_tempo(event)
        elif isinstance(event, RouterErrorReply):
            log.info("router says %s: %s", event.code, event.detail)
            if self.on_error is not None:
                self.on_error(event.code, event.detail)

    async def _reconnect(self) -> None:
        wait = BACKOFF_FIRST
        first = self.servers.index(self.server)
        attempt = 0
        while not self._closing:
            await asyncio.sleep(wait)
            # The router it had first (its place is kept there), then the others in turn; the
            # wait doubles after each round of them all.
            self.server = self.servers[(first + attempt) % len(self.servers)]
            attempt += 1
            round_over = attempt % len(self.servers) == 0
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
                log.info("reconnecting to %s: %s", self.server, exc)
                if round_over:
                    wait = min(BACKOFF_MAX, wait * 2)
                continue
            how = "its place resumed" if self.resumed else "registered anew"
            log.warning("reconnected to %s, %s", self.server, how)
            if self.on_reconnect is not None:
                self.on_reconnect()
            return

    async def _keep_alive(self) -> None:
        """Pings every `ping_seconds`; with a session, acknowledgements every ACK_SECONDS."""
        since_ping = 0.0
        while not self._closing:
            step = min(ACK_SECONDS, self._ping_seconds)
            await asyncio.sleep(step)
            since_ping += step
            protocol, link = self._protocol, self._link
            if not self.connected or protocol is None or link is None:
                continue
            with contextlib.suppress(NotConnected, ConnectionError, OSError):
                if protocol.numbering and protocol.received != protocol.acked:
                    await link.send(protocol.ack())
                if since_ping >= self._ping_seconds:
                    since_ping = 0.0
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
        async with self._time_lock:
            return await self._exchange_times(exchanges, timeout)

    async def _refresh_clock(self) -> None:
        """The group clock's offset: measured at once, then every `clock_refresh` seconds."""
        while not self._closing:
            if self.connected:
                with contextlib.suppress(OSError, asyncio.TimeoutError, NotConnected):
                    await self.sync_time(CLOCK_EXCHANGES)
            if self._closing:  # (Python 3.11's wait_for can swallow the close's cancel)
                return
            await asyncio.sleep(self._clock_refresh)

    async def _exchange_times(self, exchanges: int, timeout: float) -> ClockEstimate:
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

    # -- the group's tempo and state -----------------------------------------------------------

    def beat(self, at: float | None = None) -> float:
        """The group's beat now (or at `at`, this machine's Unix time); LookupError before the
        router has told the tempo."""
        return self.group_clock.beat_at(self._clock() if at is None else at)

    def time_of(self, beat: float) -> float:
        """When (this machine's Unix time) the group reaches `beat`."""
        return self.group_clock.time_of(beat)

    def next_bar(self) -> float:
        """The first beat of the next bar."""
        return self.group_clock.bar_start_after(self._clock())

    async def set_tempo(
        self, bpm: float, at_beat: float | None = None, quantum: int | None = None
    ) -> None:
        """Change the group's tempo now, or at `at_beat` (with a new bar length `quantum`,
        which needs a beat that starts a bar of it). Everyone, this client too, is told."""
        arguments: list[Argument] = [("d", float(bpm))]
        if at_beat is not None:
            arguments.append(("d", float(at_beat)))
            if quantum is not None:
                arguments.append(("i", int(quantum)))
        await self.send("/oscrouter/tempo/set", *arguments)

    async def set_playing(self, playing: bool, at_beat: float | None = None) -> None:
        """Start or stop the group's transport, now or at `at_beat`."""
        arguments: list[Argument] = [("i", int(playing))]
        if at_beat is not None:
            arguments.append(("d", float(at_beat)))
        await self.send("/oscrouter/tempo/play", *arguments)

    async def set_state(self, address: str, *args: Argument) -> None:
        """Set the group's value for `address`: the others hear `address args…`, and a late
        joiner is told it."""
        message = build_message(address, *args)
        await self.send_raw(wrap_state(message))  # /oscrouter/state ,s… address args…
        self.state[address] = Packet(message)

    async def clear_state(self, address: str) -> None:
        await self.send("/oscrouter/state/clear", ("s", address))
        self.state.pop(address, None)

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
        """Leave: the session is ended first, so that the others see the leave at once."""
        self._closing = True
        link, protocol = self._link, self._protocol
        if self.connected and self._session_asked and link is not None and protocol is not None:
            with contextlib.suppress(OSError):
                await link.send(protocol.session_request(0))
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
