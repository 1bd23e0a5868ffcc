"""Which WebSocket library the router's HTTP side is built on: aiohttp or websockets, measured.

    .venv/bin/python benchmarks/ws_library.py          writes results/ws-library.md

Each library serves the same relay on uvloop: every binary message a client sends goes to every
other client of the room, as the router's broadcast does. Both are driven by the same clients
(aiohttp's client, in processes of their own) and measured in one run, alternating:

* capacity: one sender writes 40,000 messages of 64 bytes as fast as the relay takes them, four
  receivers read them; messages delivered per second, and the relay's CPU time per delivery
  (from the kernel's account of the relay process: the library's own cost, whatever the
  clients cost);
* latency: five players each send 100 messages/s for 5 s; the time from a send to each
  receiver's arrival, p50 and p99.

Three relays: "websockets" (websockets.asyncio.server with its synchronous `broadcast`),
"aiohttp" (aiohttp.web, awaiting `send_bytes` per receiver) and "aiohttp-write" (aiohttp.web,
the frame written straight to the transport without awaiting, by the router's own
`binary_frame`, as the router's outbox writes).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "tests"))

from support.process import cpu_seconds  # noqa: E402

RELAYS = ("websockets", "aiohttp", "aiohttp-write")
REPEATS = 3
CAPACITY_MESSAGES = 40_000
RECEIVERS = 4
PLAYERS = 5
PLAYER_RATE = 100
PLAYER_SECONDS = 5.0


# -- the relays (run in a process of their own: `ws_library.py serve NAME PORT`) --------------


def serve(name: str, port: int) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(_serve_websockets(port) if name == "websockets" else _serve_aiohttp(name, port))


async def _serve_websockets(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast
    from websockets.asyncio.server import serve as ws_serve

    room: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        room.add(ws)
        try:
            async for message in ws:
                broadcast([c for c in room if c is not ws], message)
        finally:
            room.discard(ws)

    async with ws_serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


async def _serve_aiohttp(name: str, port: int) -> None:
    from aiohttp import WSMsgType, web

    from tcposcrouter.server.http.websocket import binary_frame

    room: set[web.WebSocketResponse] = set()
    transports: dict[web.WebSocketResponse, asyncio.Transport] = {}
    write_directly = name == "aiohttp-write"

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        assert request.transport is not None
        transports[ws] = request.transport
        room.add(ws)
        try:
            async for message in ws:
                if message.type is not WSMsgType.BINARY:
                    continue
                data = message.data
                others = [c for c in room if c is not ws]
                if write_directly:
                    frame = binary_frame(data)
                    for other in others:
                        transports[other].write(frame)
                else:
                    for other in others:
                        await other.send_bytes(data)
        finally:
            room.discard(ws)
            transports.pop(ws, None)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Future()


# -- the clients ----------------------------------------------------------------------------


async def _receivers(port: int, count: int, expected: int, ready: asyncio.Event) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(f"http://127.0.0.1:{port}/") for _ in range(count)]
        ready.set()
        last = 0.0

        async def drain(ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
            nonlocal last
            for _ in range(expected):
                await ws.receive_bytes()
            last = max(last, time.perf_counter())

        await asyncio.gather(*(drain(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
        return last


def client_capacity(port: int) -> None:
    """Receivers and the sender in one process; prints messages/s delivered."""
    import aiohttp
    import uvloop

    async def main() -> None:
        ready = asyncio.Event()
        receiving = asyncio.create_task(_receivers(port, RECEIVERS, CAPACITY_MESSAGES, ready))
        await ready.wait()
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.2)
            payload = b"/bench\x00\x00,i\x00\x00" + bytes(52)
            started = time.perf_counter()
            for _ in range(CAPACITY_MESSAGES):
                await ws.send_bytes(payload)
            last = await receiving
            await ws.close()
        print(json.dumps({"deliveries_per_s": CAPACITY_MESSAGES * RECEIVERS / (last - started)}))

    uvloop.install()
    asyncio.run(main())


def client_latency(port: int) -> None:
    """Five players in one process; prints the delivery latencies in microseconds."""
    import aiohttp
    import uvloop

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            players = [await http.ws_connect(f"http://127.0.0.1:{port}/") for _ in range(PLAYERS)]
            await asyncio.sleep(0.2)
            samples: list[float] = []
            expected = int(PLAYER_SECONDS * PLAYER_RATE) * (PLAYERS - 1)

            async def listen(ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
                for _ in range(expected):
                    data = await ws.receive_bytes()
                    (sent,) = struct.unpack_from("!d", data, 12)
                    samples.append((time.perf_counter() - sent) * 1e6)

            async def play(ws: aiohttp.ClientWebSocketResponse[bool], offset: float) -> None:
                await asyncio.sleep(offset)
                for _ in range(int(PLAYER_SECONDS * PLAYER_RATE)):
                    stamp = struct.pack("!d", time.perf_counter())
                    await ws.send_bytes(b"/bench\x00\x00,d\x00\x00" + stamp)
                    await asyncio.sleep(1 / PLAYER_RATE)

            await asyncio.gather(
                *(listen(ws) for ws in players),
                *(play(ws, i / PLAYER_RATE / PLAYERS) for i, ws in enumerate(players)),
            )
            for ws in players:
                await ws.close()
        samples.sort()
        print(json.dumps({"p50_us": _pct(samples, 50), "p99_us": _pct(samples, 99)}))

    uvloop.install()
    asyncio.run(main())


def _pct(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


# -- the run --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_one(relay: str, scenario: str) -> dict[str, float]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", relay, str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cpu_before = cpu_seconds([server.pid])
        out = subprocess.run(
            [sys.executable, __file__, scenario, str(port)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        result: dict[str, float] = json.loads(out)
        if scenario == "capacity":
            cpu = cpu_seconds([server.pid]) - cpu_before
            result["relay_cpu_us_per_delivery"] = cpu / (CAPACITY_MESSAGES * RECEIVERS) * 1e6
        return result
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    runs: dict[str, dict[str, list[float]]] = {r: {} for r in RELAYS}
    for _ in range(REPEATS):
        for relay in RELAYS:
            for scenario in ("capacity", "latency"):
                for key, value in _run_one(relay, scenario).items():
                    runs[relay].setdefault(key, []).append(value)
    lines = [
        "# WebSocket library: aiohttp or websockets",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on"
        f" {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} cores, Python {platform.python_version()}, uvloop;"
        f" `benchmarks/ws_library.py`; median of {REPEATS} alternating runs.",
        "",
        "| relay | deliveries/s | relay CPU µs per delivery | latency p50 µs | p99 µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for relay in RELAYS:
        r = {k: statistics.median(v) for k, v in runs[relay].items()}
        lines.append(
            f"| {relay} | {r['deliveries_per_s']:,.0f} | {r['relay_cpu_us_per_delivery']:.1f} |"
            f" {r['p50_us']:,.0f} | {r['p99_us']:,.0f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ws-library.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "capacity":
        client_capacity(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "latency":
        client_latency(int(sys.argv[2]))
    else:
        main()
