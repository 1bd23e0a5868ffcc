"""`tcposcrouter-client bridge`: one member of a group that stands in for the programs on this
machine that speak only UDP (TidalCycles/SuperDirt, Max, TouchOSC, Sonic Pi, sclang's default
port) or a local WebSocket (Strudel's `@strudel/osc`, osc-js).

    local app ──UDP──▶ --udp-listen ──┐                    ┌──▶ --udp-forward ──UDP──▶ local app
    local page ─WS──▶ --ws-listen ────┴──▶ router group ───┴──▶ every --ws-listen client

Every datagram or WebSocket message is one OSC packet, passed on byte for byte (with
`--retime`, bundle time tags are moved between this machine's clock and the group's). User lists
and private messages pass through like any packet. While the router is away the bridge keeps
reconnecting and never stops; what local apps send meanwhile is lost — counted and reported on
stderr, never queued to arrive late.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..client.aio import BACKOFF_FIRST, BACKOFF_MAX, CannotConnect, NotConnected, RouterClient
from ..osc.messages import user_list_message
from .retime import shift_time_tags

__all__ = ["Bridge", "BridgeConfig"]

log = logging.getLogger("tcposcrouter.bridge")

# The largest UDP payload (IPv4): a bigger group packet cannot reach a UDP app.
MAX_DATAGRAM = 65_507
# Packets from local apps waiting for the router connection to take them: a second of a busy
# app. Beyond it they are lost (and counted), not queued to arrive late.
SEND_QUEUE = 5_000
# How often --retime asks the router's time again: clocks drift by tens of µs per minute.
RESYNC_SECONDS = 30.0
# A local WebSocket client that has this much unread is dropped rather than buffered forever.
LOCAL_WS_BUFFER = 8 * 1024 * 1024


@dataclass
class BridgeConfig:
    server: str
    user: str
    password: str
    group: str
    group_password: str
    udp_listen: tuple[str, int] | None = None
    udp_forward: list[tuple[str, int]] = field(default_factory=list)
    ws_listen: tuple[str, int] | None = None
    retime: bool = False


class _Inbound(asyncio.DatagramProtocol):
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._bridge.from_local(data)


class Bridge:
    def __init__(self, config: BridgeConfig, report: TextIO = sys.stderr) -> None:
        self.config = config
        self._report = report
        self.client: RouterClient | None = None
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue(SEND_QUEUE)
        self._udp_out: asyncio.DatagramTransport | None = None
        self._udp_in: asyncio.DatagramTransport | None = None
        # Local WebSocket clients, with their transports (to see what they have not read).
        self._local_ws: dict[Any, asyncio.Transport] = {}
        self._ws_runner: Any = None
        self.lost = 0  # local packets lost while the router was away, this episode
        self.lost_total = 0
        self.forwarded_out = 0  # local packets sent to the group
        self.forwarded_in = 0  # group packets handed to local apps
        self.ready = asyncio.Event()  # local endpoints open
        self.joined = asyncio.Event()  # in the group (again)

    def _say(self, text: str) -> None:
        print(f"tcposcrouter-client bridge: {text}", file=self._report, flush=True)

    # -- local side ---------------------------------------------------------------------------

    def from_local(self, packet: bytes) -> None:
        """A packet from a local app: to the group, in order, or counted as lost."""
        if packet.startswith(b"/oscrouter/register\x00"):
            return  # the bridge itself is the member; a local app's register would be refused
        client = self.client
        if client is None or not client.connected:
            self._lose(1)
            return
        if self.config.retime:
            packet = shift_time_tags(packet, self._offset())
        try:
            self._outgoing.put_nowait(packet)
        except asyncio.QueueFull:
            self._lose(1)

    def _lose(self, count: int) -> None:
        if self.lost == 0:
            self._say("the router is away: messages from local apps are being lost")
        self.lost += count
        self.lost_total += count

    def _offset(self) -> float:
        client = self.client
        if client is None or not client.clock.samples:
            return 0.0
        return client.clock.offset

    def to_local(self, packet: bytes) -> None:
        """A packet from the group: to every --udp-forward address and local WebSocket."""
        self.forwarded_in += 1
        if self.config.retime:
            packet = shift_time_tags(packet, -self._offset())
        udp = self._udp_out
        if udp is not None and self.config.udp_forward:
            if len(packet) > MAX_DATAGRAM:
                log.warning("a %d-byte packet is too large for UDP; not forwarded", len(packet))
            else:
                for address in self.config.udp_forward:
                    udp.sendto(packet, address)
        for ws, transport in list(self._local_ws.items()):
            if transport.get_write_buffer_size() > LOCAL_WS_BUFFER:
                self._say("a local WebSocket client does not read: dropped")
                del self._local_ws[ws]
                transport.abort()
                continue
            sending = asyncio.ensure_future(ws.send_bytes(packet))
            sending.add_done_callback(_ignore_failure)

    async def _open_local(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        out, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, family=socket.AF_INET
        )
        self._udp_out = out
        if config.udp_listen is not None:
            try:
                inbound, _ = await loop.create_datagram_endpoint(
                    lambda: _Inbound(self), local_addr=config.udp_listen
                )
            except OSError as exc:
                raise _cannot_listen("--udp-listen", config.udp_listen, exc) from None
            self._udp_in = inbound
            self._say(f"UDP in on {config.udp_listen[0]}:{config.udp_listen[1]}")
        for host, port in config.udp_forward:
            self._say(f"UDP out to {host}:{port}")
        if config.ws_listen is not None:
            try:
                await self._open_websocket(*config.ws_listen)
            except OSError as exc:
                raise _cannot_listen("--ws-listen", config.ws_listen, exc) from None
            self._say(f"WebSocket in and out on ws://{config.ws_listen[0]}:{config.ws_listen[1]}/")
        self.ready.set()

    async def _open_websocket(self, host: str, port: int) -> None:
        from aiohttp import WSMsgType, web

        async def serve(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse(compress=False, max_msg_size=16 * 1024 * 1024)
            await ws.prepare(request)
            if request.transport is None:
                return ws
            self._local_ws[ws] = request.transport
            names = self.client.users if self.client is not None else []
            if names:
                await ws.send_bytes(user_list_message(names))
            try:
                async for message in ws:
                    if message.type is WSMsgType.BINARY:
                        self.from_local(message.data)
            finally:
                self._local_ws.pop(ws, None)
            return ws

        app = web.Application()
        # osc-js and @strudel/osc connect to the server's root; any path is accepted.
        app.router.add_get("/{tail:.*}", serve)
        runner = self._ws_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()

    # -- group side ---------------------------------------------------------------------------

    def _users(self, names: list[str]) -> None:
        self.to_local(user_list_message(names))

    def _back(self) -> None:
        if self.lost:
            self._say(f"the router is back; {self.lost} messages from local apps were lost")
        else:
            self._say("the router is back")
        self.lost = 0
        self.joined.set()

    async def _join(self) -> RouterClient:
        """Join the group, trying again for as long as it takes (RegisterRefused ends it)."""
        config = self.config
        wait = BACKOFF_FIRST
        while True:
            try:
                client = await RouterClient.connect(
                    config.server, config.user, config.password, config.group,
                    config.group_password, on_users=self._users, on_reconnect=self._back,
                )  # fmt: skip
            except CannotConnect as cannot:
                if cannot.lasting:
                    raise  # a wrong port, scheme or certificate: trying again cannot help
                self._say(f"{cannot}; trying again in {wait:.1f} s")
                await asyncio.sleep(wait)
                wait = min(BACKOFF_MAX, wait * 2)
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                self._say(f"cannot reach {config.server} ({exc}); trying again in {wait:.1f} s")
                await asyncio.sleep(wait)
                wait = min(BACKOFF_MAX, wait * 2)
                continue
            self._say(f"joined {config.group} as {config.user} on {config.server}")
            return client

    async def _send_loop(self, client: RouterClient) -> None:
        while True:
            packet = await self._outgoing.get()
            try:
                await client.send_raw(packet)
                self.forwarded_out += 1
            except (NotConnected, ConnectionError, OSError):
                self._lose(1 + self._outgoing.qsize())
                while not self._outgoing.empty():
                    self._outgoing.get_nowait()

    async def _resync(self, client: RouterClient) -> None:
        while True:
            with contextlib.suppress(NotConnected, ConnectionError, OSError, asyncio.TimeoutError):
                await client.sync_time()
            await asyncio.sleep(RESYNC_SECONDS)

    async def run(self) -> None:
        """Bridge until cancelled; raises `RegisterRefused` if the router will not have us."""
        await self._open_local()
        tasks: list[asyncio.Task[None]] = []
        client = None
        try:
            client = self.client = await self._join()
            if self.lost:
                self._back()
            self.joined.set()
            tasks.append(asyncio.create_task(self._send_loop(client)))
            if self.config.retime:
                tasks.append(asyncio.create_task(self._resync(client)))
            async for packet in client:
                self.to_local(packet.raw)
        finally:
            for task in tasks:
                task.cancel()
            if client is not None:
                await client.close()
            await self.close_local()

    async def close_local(self) -> None:
        for transport in (self._udp_in, self._udp_out):
            if transport is not None:
                transport.close()
        for ws in list(self._local_ws):
            await ws.close()
        if self._ws_runner is not None:
            await self._ws_runner.cleanup()


def _ignore_failure(sent: asyncio.Future[None]) -> None:
    if not sent.cancelled():
        sent.exception()  # a local client that went away; its handler forgets it


def _cannot_listen(flag: str, address: tuple[str, int], error: OSError) -> OSError:
    """A local port the bridge cannot open, said with the flag that chose it."""
    host, port = address
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        reason = "another program holds it (a second bridge, or the app itself?)"
    return OSError(error.errno, f"cannot listen on {host}:{port} ({flag}): {reason}")
