"""The ensemble scenario with half the players on WebSocket, against the same all on TCP.

    .venv/bin/python benchmarks/websocket_ensemble.py            results/websocket.md
    .venv/bin/python benchmarks/websocket_ensemble.py --smoke    a short run (CI)

One group of 8 players; each sends 50 messages/s of 100 bytes for 10 s and hears the other
seven (2,800 deliveries/s). "all TCP": 8 length-prefix connections; "half WebSocket": 4 of them
on /osc instead. The router runs as in the main benchmark (rate and connection limits off),
restarted for each run; the two set-ups alternate, three times each. Every player lives in one
load process (asyncio on uvloop; aiohttp's client for WebSocket), so a send and its arrivals
are timed on one clock: latency is arrival minus send, over every delivery. The load process
is the same Python for both set-ups; its own cost is in both figures alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from support.process import cpu_seconds, free_port, wait_until_listening  # noqa: E402
from tcposcrouter.osc.framing import LengthPrefixDecoder, frame_length_prefix  # noqa: E402
from tcposcrouter.osc.messages import build_message, register_message  # noqa: E402

PLAYERS = 8
RATE = 50
SIZE = 100
SETUPS = ("all TCP", "half WebSocket")
# Where a note's send time lies: after "/ens", ",iids" and the two ints.
STAMP_AT = 8 + 8 + 4 + 4


def _note(player: int, seq: int) -> bytes:
    """A 100-byte message: who, which, when sent (perf_counter), padding."""
    padding = "x" * (SIZE - 36)
    return build_message(
        "/ens", ("i", player), ("i", seq), ("d", time.perf_counter()), ("s", padding)
    )


async def _ensemble(
    tcp_port: int, http_port: int, websockets: int, seconds: float
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    expected = int(seconds * RATE) * (PLAYERS - 1)
    done = asyncio.Event()
    finished = 0

    def arrived(packet: bytes) -> None:
        if packet.startswith(b"/ens"):
            (sent,) = struct.unpack_from(">d", packet, STAMP_AT)
            latencies.append(time.perf_counter() - sent)

    async with aiohttp.ClientSession() as http:
        senders: list[Callable[[bytes], Awaitable[None]]] = []
        readers: list[asyncio.Task[None]] = []  # kept: a task nobody holds may be collected
        counts = [0] * PLAYERS

        async def join(player: int) -> None:
            register = register_message(f"p{player}", "pw", "ensemble", "gpw", player)
            if player < websockets:
                ws = await http.ws_connect(f"http://127.0.0.1:{http_port}/osc", compress=0)
                await ws.send_bytes(register)

                async def read_ws() -> None:
                    nonlocal finished
                    async for message in ws:
                        arrived(message.data)
                        if message.data.startswith(b"/ens"):
                            counts[player] += 1
                            if counts[player] == expected:
                                finished += 1
                                if finished == PLAYERS:
                                    done.set()

                readers.append(asyncio.create_task(read_ws()))
                senders.append(ws.send_bytes)
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(6, 1, 1)  # TCP_NODELAY, as the clients musicians use set it
                writer.write(frame_length_prefix(register))
                decoder = LengthPrefixDecoder(1 << 20)

                async def read_tcp() -> None:
                    nonlocal finished
                    while data := await reader.read(65536):
                        for packet in decoder.feed(data):
                            assert isinstance(packet, bytes)
                            arrived(packet)
                            if packet.startswith(b"/ens"):
                                counts[player] += 1
                                if counts[player] == expected:
                                    finished += 1
                                    if finished == PLAYERS:
                                        done.set()

                readers.append(asyncio.create_task(read_tcp()))

                def sender(writer: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
                    async def send_tcp(packet: bytes) -> None:
                        writer.write(frame_length_prefix(packet))

                    return send_tcp

                senders.append(sender(writer))

        for player in range(PLAYERS):
            await join(player)
        await asyncio.sleep(1.0)  # every register answered, every user list read
        latencies.clear()

        async def play(player: int) -> None:
            await asyncio.sleep(player / RATE / PLAYERS)  # players spread over the beat
            start = time.perf_counter()
            for seq in range(int(seconds * RATE)):
                await senders[player](_note(player, seq))
                delay = start + (seq + 1) / RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)

        await asyncio.gather(*(play(p) for p in range(PLAYERS)))
        await asyncio.wait_for(done.wait(), 30)
    latencies.sort()
    n = len(latencies)
    return {
        "deliveries": n,
        "expected": expected * PLAYERS,
        "p50_us": latencies[n // 2] * 1e6,
        "p99_us": latencies[min(n - 1, int(n * 0.99))] * 1e6,
    }


def _run(setup: str, seconds: float) -> dict[str, Any]:
    import uvloop

    tcp_port, http_port = free_port(), free_port()
    router = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1",
         "--osc-port", str(tcp_port), "--disable-osc11", "--http-port", str(http_port),
         "--no-rate-limit", "--max-connections-per-address", "0", "--max-connections", "0",
         "-q"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    try:
        wait_until_listening(router, [tcp_port, http_port])
        websockets = PLAYERS // 2 if setup == "half WebSocket" else 0
        cpu_before = cpu_seconds([router.pid])
        result = uvloop.run(_ensemble(tcp_port, http_port, websockets, seconds))
        result["router_cpu_percent"] = 100 * (cpu_seconds([router.pid]) - cpu_before) / seconds
        return result
    finally:
        router.terminate()
        router.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="one short run of each (CI)")
    args = parser.parse_args()
    repeat, seconds = (1, 1.0) if args.smoke else (3, 10.0)
    runs: dict[str, list[dict[str, Any]]] = {setup: [] for setup in SETUPS}
    for _ in range(repeat):
        for setup in SETUPS:
            result = _run(setup, seconds)
            print(setup, json.dumps(result), flush=True)
            runs[setup].append(result)
    lost = [r for rs in runs.values() for r in rs if r["deliveries"] != r["expected"]]
    if args.smoke:
        return 1 if lost else 0
    lines = [
        "# WebSocket: the ensemble with half the players on /osc",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; `benchmarks/websocket_ensemble.py`: one group of"
        f" {PLAYERS}, each sending {RATE}/s of {SIZE} bytes for {seconds:g} s; median of"
        f" {repeat} alternating runs (each run's range in brackets).",
        "",
        "| set-up | latency p50 µs | p99 µs | router CPU % | delivered |",
        "|---|---:|---:|---:|---:|",
    ]
    for setup in SETUPS:
        rs = runs[setup]

        def med(key: str, rs: list[dict[str, Any]] = rs) -> str:
            values = [r[key] for r in rs]
            return f"{statistics.median(values):,.0f} [{min(values):,.0f} to {max(values):,.0f}]"

        delivered = sum(r["deliveries"] for r in rs)
        expected = sum(r["expected"] for r in rs)
        lines.append(
            f"| {setup} | {med('p50_us')} | {med('p99_us')} | {med('router_cpu_percent')} |"
            f" {delivered:,} of {expected:,} |"
        )
    (HERE / "results" / "websocket.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
