"""Soak test: a router under churn, floods, stalls and garbage, while an ensemble plays.

    python tools/soak.py --seconds 30        # what CI runs
    python tools/soak.py --seconds 3600      # an hour, on demand

It starts the router (the installed `tcposcrouter` package, `python -m tcposcrouter`) on free
loopback ports and runs, all at once for the whole time:

* ensembles: 4 groups of 4 players, each player sending 50 sequenced, time-stamped messages per
  second to its group; every player checks that every other player's messages arrive, all of
  them, in order;
* churn: clients that connect, register, send a little and leave, over and over;
* floods: members of a noisy group sending as fast as they can (the rate limit slows them down);
* stalls: members of the noisy group that stop reading (dropped as slow consumers);
* garbage: connections that send random bytes, both framings;
* strangers that connect and never register.

Each kind of client uses source addresses of its own in 127.0.0.0/8, as separate hosts would.
It prints the figures and exits 1 if an ensemble message was lost or reordered, if the router's
resident memory grew by 50 MB or more, or if the router died.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

# The test-support package is shared with the test suite and the benchmark.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.client import AsyncClient
from support.process import free_port, rss_kib, wait_until_listening
from support.stats import percentile
from tcposcrouter.osc.messages import build_message

RSS_GROWTH_LIMIT_KIB = 50 * 1024


@dataclass
class Figures:
    sent: int = 0
    received: int = 0
    lost: int = 0
    reordered: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    churn_sessions: int = 0
    garbage_connections: int = 0
    stalled_dropped: int = 0
    flood_packets: int = 0
    rss_kib: list[int] = field(default_factory=list)
    # (group, player) -> messages it sent; (group, receiver) -> {sender: next sequence expected}
    sent_by: dict[tuple[str, str], int] = field(default_factory=dict)
    expected_by: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def count_tail_losses(self) -> None:
        """Messages never received at all after the last one that was."""
        for (group, _), expected in self.expected_by.items():
            for sender, next_seq in expected.items():
                self.lost += self.sent_by[(group, sender)] - next_seq


class JoinGate:
    """Opens once `count` players have arrived (asyncio.Barrier is Python 3.11+)."""

    def __init__(self, count: int) -> None:
        self._missing = count
        self._open = asyncio.Event()

    async def wait(self) -> None:
        self._missing -= 1
        if self._missing <= 0:
            self._open.set()
        await self._open.wait()


async def ensemble_player(
    port: int,
    group: str,
    name: str,
    players: list[str],
    until: float,
    figures: Figures,
    everyone_joined: JoinGate,
) -> None:
    conn = await AsyncClient.open(port, "127.0.1.1")
    await conn.register(name, group)
    expected = {p: 0 for p in players if p != name}
    figures.expected_by[(group, name)] = expected
    await everyone_joined.wait()  # nobody plays before the whole ensemble is there

    async def listen() -> None:
        while True:
            packet = await conn.recv()
            if not packet.startswith(b"/ens\x00"):
                continue  # user lists
            sender = packet[16:].split(b"\x00", 1)[0].decode()
            offset = 16 + (len(sender) + 4) // 4 * 4
            seq, sent_ns = struct.unpack(">iq", packet[offset : offset + 12])
            figures.received += 1
            figures.latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)
            if seq > expected[sender]:
                figures.lost += seq - expected[sender]
            elif seq < expected[sender]:
                figures.reordered += 1
            expected[sender] = seq + 1

    listener = asyncio.create_task(listen())
    seq = 0
    while time.monotonic() < until:
        conn.send(build_message("/ens", ("s", name), ("i", seq), ("h", time.perf_counter_ns())))
        figures.sent += len(players) - 1
        seq += 1
        await asyncio.sleep(0.02)  # 50 messages per second
    figures.sent_by[(group, name)] = seq
    await asyncio.sleep(1.0)  # let the last messages arrive
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await listener
    conn.close()


async def churn(port: int, until: float, figures: Figures, worker: int) -> None:
    rng = random.Random(worker)
    while time.monotonic() < until:
        try:
            conn = await AsyncClient.open(port, f"127.0.2.{worker + 1}")
            await conn.register(f"visitor{worker}", f"churn{rng.randrange(3)}")
            for i in range(rng.randrange(1, 20)):
                conn.send(build_message("/hello", ("i", i)))
            await conn.writer.drain()
            await asyncio.sleep(rng.random() * 0.2)
            conn.close()
            figures.churn_sessions += 1
        except (ConnectionError, OSError):
            await asyncio.sleep(0.1)


async def flooder(port: int, until: float, figures: Figures) -> None:
    conn = await AsyncClient.open(port, "127.0.3.1")
    await conn.register("flood", "noisy")
    drain = asyncio.create_task(_discard(conn))
    packet = build_message("/flood", ("s", "x" * 200))
    with contextlib.suppress(ConnectionError, OSError):
        while time.monotonic() < until:
            for _ in range(100):
                conn.send(packet)
            figures.flood_packets += 100
            await conn.writer.drain()
            await asyncio.sleep(0.001)
    drain.cancel()
    conn.close()


async def _discard(conn: AsyncClient) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            await conn.recv()


async def staller(port: int, until: float, figures: Figures, index: int) -> None:
    """Joins the noisy group and never reads again; comes back when it is dropped."""
    while time.monotonic() < until:
        try:
            conn = await AsyncClient.open(port, f"127.0.4.{index + 1}")
            sock = conn.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await conn.register(f"stall{index}", "noisy")
            # Stop reading: the router must drop us.
            cast(asyncio.Transport, conn.writer.transport).pause_reading()
            while time.monotonic() < until and not conn.writer.is_closing():
                conn.send(build_message("/oscrouter/ping"))  # alive, but not reading
                try:
                    await asyncio.wait_for(conn.writer.drain(), 1)
                except (ConnectionError, OSError):
                    figures.stalled_dropped += 1
                    break
                except asyncio.TimeoutError:
                    pass
                await asyncio.sleep(0.5)
            conn.close()
        except (ConnectionError, OSError):
            await asyncio.sleep(0.2)


async def garbage(port: int, until: float, figures: Figures, index: int) -> None:
    rng = random.Random(1000 + index)
    while time.monotonic() < until:
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(f"127.0.5.{index + 1}", 0)
            )
            first = rng.choice([b"\x00", b"\xc0", b"/", b"#", b"\xff"])
            writer.write(first + rng.randbytes(rng.randrange(1, 3000)))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.transport.abort()
            figures.garbage_connections += 1
        except (ConnectionError, OSError):
            pass
        await asyncio.sleep(0.02)


async def stranger(port: int, until: float) -> None:
    """Connects and never registers: the register timeout closes it."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=("127.0.6.1", 0)
            )
            await reader.read()  # until the router closes it
            writer.close()
        except (ConnectionError, OSError):
            await asyncio.sleep(0.5)


async def sample_rss(pid: int, until: float, figures: Figures) -> None:
    while time.monotonic() < until:
        figures.rss_kib.append(rss_kib(pid))
        await asyncio.sleep(1)


async def soak(port: int, pid: int, seconds: float) -> Figures:
    figures = Figures()
    await asyncio.sleep(0.5)
    figures.rss_kib.append(rss_kib(pid))
    until = time.monotonic() + seconds
    tasks = [sample_rss(pid, until, figures)]
    everyone_joined = JoinGate(16)
    for g in range(4):
        players = [f"p{i}" for i in range(4)]
        tasks += [
            ensemble_player(port, f"ensemble{g}", name, players, until, figures, everyone_joined)
            for name in players
        ]
    tasks += [churn(port, until, figures, w) for w in range(4)]
    tasks += [flooder(port, until, figures)]
    tasks += [staller(port, until, figures, i) for i in range(2)]
    tasks += [garbage(port, until, figures, i) for i in range(3)]
    tasks += [stranger(port, until)]
    await asyncio.gather(*tasks)
    figures.count_tail_losses()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    port = free_port()
    router = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(port),
         "--disable-osc11", "--no-http", "--register-timeout", "2",
         "--max-output-buffer", "262144", "-q"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        try:
            wait_until_listening(router, [port])
        except RuntimeError as exc:
            print(f"the router did not start: {exc}")
            return 1
        started = time.monotonic()
        figures = asyncio.run(soak(port, router.pid, args.seconds))
        elapsed = time.monotonic() - started
        alive = router.poll() is None
        end_rss = rss_kib(router.pid) if alive else 0
    finally:
        router.terminate()
        exit_code = router.wait(15)

    lat = figures.latencies_ms
    rss = figures.rss_kib
    growth = end_rss - rss[0]
    print(f"soak: {elapsed:.0f} s against tcposcrouter (router exit code {exit_code})")
    print(f"  ensemble messages: {figures.sent} expected deliveries, {figures.received} received,")
    print(f"    {figures.lost} lost, {figures.reordered} reordered")
    print(
        f"    latency p50 {percentile(lat, 0.5):.2f} ms, "
        f"p99 {percentile(lat, 0.99):.2f} ms, max {max(lat, default=0.0):.2f} ms"
    )
    print(f"  churn: {figures.churn_sessions} join-send-leave sessions")
    print(
        f"  flood: {figures.flood_packets} packets sent by one flooder "
        "(slowed to its rate limit, none dropped)"
    )
    print(f"  stalls: {figures.stalled_dropped} stalled readers dropped as slow consumers")
    print(f"  garbage: {figures.garbage_connections} connections sending random bytes")
    peak = max([*rss, end_rss])
    print(f"  router RSS: {rss[0]} KiB at start, {peak} KiB peak, {end_rss} KiB at end")
    failures = []
    if not alive:
        failures.append("the router died")
    if figures.lost or figures.reordered:
        failures.append("ensemble messages were lost or reordered")
    if figures.received == 0:
        failures.append("no ensemble message arrived")
    if growth >= RSS_GROWTH_LIMIT_KIB:
        failures.append(f"RSS grew by {growth} KiB")
    if exit_code != 0:
        failures.append(f"the router exited with {exit_code} on SIGTERM")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("soak: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
