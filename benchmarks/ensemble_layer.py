"""The ensemble layer's figures (docs/performance.md, "The ensemble layer"), each on the real
router process:

    .venv/bin/python benchmarks/ensemble_layer.py [--minutes 10] [--only joiner,clocks]

* joiner   a group keeps 1,000 state addresses, 900 KB in all; a member registers while another
           plays 50 messages a second: how long from its register to the end of the state, and
           that no live message came before it (repeated 20 times).
* clocks   two pairs of members, each member a Python client (tcposcrouter.client) with its group
           clock measured as it does by itself (48 exchanges on joining and every 30 s): one
           pair on loopback, one pair each
           through a delaying relay of its own (benchmarks/delay_relay.py: 20 ms each way, ±5 ms
           of jitter, order kept: 40 ms of round trip). Every 100 ms both members of a pair read
           the group's beat for the same instant; the difference, in ms, is what two players
           would hear apart. Every 10 s one member of each pair sets a new tempo one bar ahead
           (the first bar that starts a bar from now); each member notes how long before that
           bar the change reached it.

Writes results/ensemble_layer.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests"))

from delay_relay import DelayRelay  # noqa: E402
from support.process import start_router_process  # noqa: E402
from support.stats import percentile  # noqa: E402
from tcposcrouter.client import RouterClient  # noqa: E402
from tcposcrouter.client.aio import CLOCK_EXCHANGES  # noqa: E402
from tcposcrouter.osc.framing import LengthPrefixDecoder, frame_length_prefix  # noqa: E402
from tcposcrouter.osc.messages import register_message  # noqa: E402

RESULTS = HERE / "results"
STATE_ADDRESSES = 1000
STATE_VALUE_BYTES = 880  # with its address and type tags, 900 bytes a message: 900 KB in all
JOINS = 20


async def _late_joiner(port: int) -> dict[str, Any]:
    """How long a late joiner waits for 900 KB of state, and what came before its end."""
    keeper = await RouterClient.connect(f"127.0.0.1:{port}", "keeper", "pw", "big", "gpw")
    player = await RouterClient.connect(f"127.0.0.1:{port}", "player", "pw", "big", "gpw")
    value = "x" * STATE_VALUE_BYTES
    for index in range(STATE_ADDRESSES):
        await keeper.set_state(f"/part/{index:04d}", value)
    await keeper.sync_time(1)  # answered after the last set: all are kept
    size = sum(len(p.raw) for p in keeper.state.values())

    playing = True

    async def play() -> None:
        n = 0
        while playing:
            await player.send("/live", n)
            n += 1
            await asyncio.sleep(0.02)

    music = asyncio.create_task(play())
    waits: list[float] = []
    live_before_end = 0
    told_count = 0
    for join in range(JOINS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        decoder = LengthPrefixDecoder(1 << 24)
        sent = time.perf_counter()
        writer.write(frame_length_prefix(register_message(f"late{join}", "pw", "big", "gpw", 1)))
        ended = False
        told = 0
        while not ended:
            for packet in decoder.feed(await reader.read(1 << 20)):
                assert isinstance(packet, bytes)
                if packet.startswith(b"/oscrouter/state/end"):
                    waits.append(time.perf_counter() - sent)
                    ended = True
                    break
                if packet.startswith(b"/live\x00"):
                    live_before_end += 1
                if packet.startswith(b"/part/"):
                    told += 1
        told_count = told
        writer.close()
        await asyncio.sleep(0.2)
    playing = False
    await music
    await keeper.close()
    await player.close()
    waits_ms = sorted(w * 1000 for w in waits)
    return {
        "addresses": told_count,
        "state_bytes": size,
        "joins": len(waits_ms),
        "p50_ms": round(percentile(waits_ms, 0.5), 2),
        "largest_ms": round(max(waits_ms), 2),
        "live_before_end": live_before_end,
    }


async def _pair(name: str, servers: tuple[str, str], group: str, seconds: float) -> dict[str, Any]:
    """Two members' group clocks read for the same instants every 100 ms for `seconds`; a
    tempo change at the next bar every 10 s."""
    margins: list[float] = []  # ms before the bar each member heard a change
    one = await RouterClient.connect(servers[0], f"{name}-1", "pw", group, "gpw")
    other = await RouterClient.connect(servers[1], f"{name}-2", "pw", group, "gpw")
    expecting: dict[int, float] = {}  # id(client) -> the local time of the bar it waits for

    def heard(client: RouterClient) -> Any:
        def told(line: Any) -> None:
            at = expecting.pop(id(client), None)
            if at is not None:
                margins.append((client.time_of(line.beat0) - time.time()) * 1000)

        return told

    one.on_tempo, other.on_tempo = heard(one), heard(other)
    # Their first measurement, as each client makes it on joining (a poll: the client offers
    # no event for it).
    while one.clock.samples < CLOCK_EXCHANGES or other.clock.samples < CLOCK_EXCHANGES:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    apart: list[float] = []
    start = time.monotonic()
    next_change = start + 5
    bpm = 120.0
    while time.monotonic() - start < seconds:
        await asyncio.sleep(0.1)
        now = time.time()
        try:
            line = one.group_clock.line_at(now)
            beats = one.beat(now) - other.beat(now)
        except LookupError:
            continue
        if other.group_clock.line_at(now).bpm == line.bpm:  # not mid-change
            apart.append(abs(beats) * 60_000 / line.bpm)
        if time.monotonic() >= next_change:
            next_change += 10
            bpm = 100.0 if bpm == 120.0 else 120.0
            bar = one.next_bar()  # one bar ahead: the first bar that starts a bar from now
            if one.time_of(bar) - time.time() < line.quantum * 60 / line.bpm:
                bar += line.quantum
            expecting[id(one)] = expecting[id(other)] = one.time_of(bar)
            await one.set_tempo(bpm, bar)
    await one.close()
    await other.close()
    return {
        "samples": len(apart),
        "p50_ms": round(percentile(apart, 0.5), 4),
        "p99_ms": round(percentile(apart, 0.99), 4),
        "largest_ms": round(max(apart), 4),
        "changes_heard": len(margins),
        "earliest_margin_ms": round(min(margins), 1) if margins else None,
        "late": sum(m < 0 for m in margins),
    }


async def _clocks(port: int, seconds: float) -> dict[str, Any]:
    router = f"127.0.0.1:{port}"
    relays = [DelayRelay(port, one_way=0.020, jitter=0.005) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        loopback, delayed = await asyncio.gather(
            _pair("loop", (router, router), "clocks-loopback", seconds),
            _pair(
                "far",
                (f"127.0.0.1:{relays[0].port}", f"127.0.0.1:{relays[1].port}"),
                "clocks-delayed",
                seconds,
            ),
        )
    finally:
        for relay in relays:
            await relay.close()
    return {"seconds": seconds, "loopback": loopback, "delayed_40ms": delayed}


def render(results: dict[str, Any]) -> str:
    lines = [
        "# The ensemble layer",
        "",
        f"Measured {results['when']} on this machine (benchmarks/ensemble_layer.py).",
        "",
    ]
    joiner = results.get("joiner")
    if joiner:
        lines += [
            "## A late joiner and 900 KB of state",
            "",
            f"{joiner['addresses']} addresses, {joiner['state_bytes']:,} bytes; {joiner['joins']} "
            f"joins while a member plays 50 messages/s: from the register to the state's end "
            f"p50 {joiner['p50_ms']} ms, largest {joiner['largest_ms']} ms; live messages "
            f"before the state's end: {joiner['live_before_end']}.",
            "",
        ]
    clocks = results.get("clocks")
    if clocks:
        lines += [
            "## Two members' group clocks",
            "",
            f"Over {clocks['seconds'] / 60:g} minutes, the beat read by two members for the same "
            "instant every 100 ms, apart in ms; a tempo change one bar ahead every 10 s.",
            "",
            "| path | samples | p50 ms | p99 ms | largest ms | changes heard | earliest "
            "margin before the bar ms | late |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, label in (("loopback", "loopback"), ("delayed_40ms", "40 ms RTT ±5 ms")):
            row = clocks[key]
            lines.append(
                f"| {label} | {row['samples']} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['largest_ms']} | {row['changes_heard']} | {row['earliest_margin_ms']} | "
                f"{row['late']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", default="joiner,clocks")
    parser.add_argument("--out", type=Path, default=RESULTS / "ensemble_layer")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    results: dict[str, Any] = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with_state = ("--max-state-bytes", "2000000", "--rate-limit-packets", "0")
    router = start_router_process(Path(_scratch()), *with_state)
    try:
        if "joiner" in chosen:
            results["joiner"] = asyncio.run(_late_joiner(router.osc10_port))
            print(json.dumps(results["joiner"]), flush=True)
        if "clocks" in chosen:
            results["clocks"] = asyncio.run(_clocks(router.osc10_port, args.minutes * 60))
            print(json.dumps(results["clocks"]), flush=True)
    finally:
        router.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    text = render(results)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="ensemble-layer-")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
