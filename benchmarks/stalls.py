"""Where the event loop is held while a stressor hits the router: the router in this process on
uvloop, the ensemble and one stressor of benchmarks/stress.py against it, and three witnesses:

* a watchdog callback due every millisecond: how late each one ran is how long the loop was
  held (every stall over 2 ms is kept);
* the garbage collector's own callbacks: each collection's generation and duration;
* with --sample, a thread that reads the loop thread's stack every 0.5 ms: for the samples
  taken inside a stall, the router's innermost functions, ranked (it needs the GIL to read, so
  it lengthens the stalls it watches, and cannot see inside C code that holds the GIL:
  py-spy --native from outside can).

    .venv/bin/python benchmarks/stalls.py STRESSOR [--http] [--gc-freeze] [--sample]

(STRESSOR: one of benchmarks/stress.py's; dashboards needs --http.)

Prints the ensemble's figures, the longest stalls with the collections inside them, and where
the loop was. (The sampler costs the loop a little; the figures are for finding holds, not for
the record: benchmarks/stress.py is.)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from run import more_open_files, prepare  # noqa: E402
from stress import STRESSORS, TOKEN, play  # noqa: E402

STALL_MS = 2.0


class Witnesses:
    def __init__(self) -> None:
        self.stalls: list[tuple[float, float, float]] = []  # (start, ms, of it on the CPU)
        self.collections: list[tuple[float, int, float]] = []  # (start, generation, ms)
        self.samples: list[tuple[float, str]] = []  # (time, innermost router frames)
        self._gc_started = 0.0
        self._stop = threading.Event()
        self._main = threading.main_thread().ident

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            took = (time.perf_counter() - self._gc_started) * 1000
            self.collections.append((self._gc_started, info["generation"], took))

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        due = time.perf_counter() + 0.001
        cpu_due = time.thread_time()

        def tick() -> None:
            nonlocal due, cpu_due
            now, cpu = time.perf_counter(), time.thread_time()
            late = (now - due) * 1000
            if late > STALL_MS:
                # The loop thread's CPU time over the same span: much less than the stall
                # means the process was not running (other processes had the cores).
                self.stalls.append((due, late, (cpu - cpu_due) * 1000))
            due, cpu_due = now + 0.001, cpu
            loop.call_later(0.001, tick)

        loop.call_later(0.001, tick)

    def sample(self) -> None:
        frames = sys._current_frames
        while not self._stop.is_set():
            frame = frames().get(self._main)  # type: ignore[arg-type]
            names: list[str] = []
            innermost = ""  # where the loop was when no router code is on the stack
            if frame is not None:
                innermost = f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"
            while frame is not None and len(names) < 4:
                code = frame.f_code
                if "tcposcrouter" in code.co_filename:
                    module = Path(code.co_filename).stem
                    names.append(f"{module}.{code.co_name}")
                frame = frame.f_back
            where = " < ".join(names) or f"(outside: {innermost or 'no Python frame'})"
            self.samples.append((time.perf_counter(), where))
            time.sleep(0.0005)

    def start_sampling(self) -> threading.Thread:
        thread = threading.Thread(target=self.sample, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def report(self) -> str:
        lines = [f"stalls over {STALL_MS:g} ms: {len(self.stalls)}"]
        if os.environ.get("STALLS_LIST"):
            lines.append("  at " + ", ".join(f"{at:.3f}:{ms:.1f}" for at, ms, _ in self.stalls))
        longest = sorted(self.stalls, key=lambda s: -s[1])[:12]
        for start, ms, cpu in longest:
            inside = [
                f"gen{g} {took:.1f} ms"
                for at, g, took in self.collections
                if start - 0.002 <= at <= start + ms / 1000
            ]
            gc_inside = ", ".join(inside) or "none"
            lines.append(f"  {ms:7.1f} ms, on the CPU {cpu:5.1f} ms  GC inside: {gc_inside}")
        big = [c for c in self.collections if c[2] > 1.0]
        lines.append(
            f"collections: {len(self.collections)}, of them over 1 ms: "
            + ", ".join(f"gen{g} {took:.1f} ms" for _, g, took in big[:20])
        )
        in_stalls: collections.Counter[str] = collections.Counter()
        for at, where in self.samples:
            for start, ms, _ in self.stalls:
                if start <= at <= start + ms / 1000:
                    in_stalls[where] += 1
                    break
        total = sum(in_stalls.values())
        lines.append(f"where the loop was in those stalls ({total} samples):")
        for where, count in in_stalls.most_common(15):
            lines.append(f"  {100 * count / max(1, total):5.1f}%  {where}")
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stressor", choices=STRESSORS)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once started")
    parser.add_argument("--http", action="store_true", help="the HTTP side on, as by default")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample the loop's stack (it takes the GIL every 0.5 ms: stalls grow)",
    )
    args = parser.parse_args(argv)
    prepare()
    more_open_files()
    import uvloop

    from tcposcrouter.limits import Limits
    from tcposcrouter.server.app import RouterServer
    from tcposcrouter.server.config import ServerConfig

    limits = Limits(
        rate_limit_packets=0, rate_limit_bytes=0, max_connections=0, max_connections_per_address=0
    )
    config = ServerConfig(
        hosts=["127.0.0.1"],
        osc10_port=0,
        osc11_port=None,
        http_port=0 if args.http else None,
        admin_token=TOKEN,
        limits=limits,
    )
    witnesses = Witnesses()
    gc.callbacks.append(witnesses.on_gc)
    results: dict[str, Any] = {}

    async def scenario() -> None:
        server = RouterServer(config)
        addresses = await server.start()
        ports = {address.split(" ")[1]: address.split(" ")[0].rsplit(":", 1)[1]
                 for address in addresses}  # fmt: skip
        port, http = ports["(OSC"], ports.get("(HTTP:")
        if args.gc_freeze:
            gc.freeze()
        loop = asyncio.get_running_loop()
        witnesses.watch(loop)
        sampler = witnesses.start_sampling() if args.sample else None

        def clear() -> None:  # what happened before the burst is not the stressor's
            witnesses.stalls.clear()
            witnesses.collections.clear()
            witnesses.samples.clear()

        def run_loads() -> None:
            http_port = None if http is None else int(http)
            results.update(play(int(port), args.stressor, http_port, at_burst=clear))

        await asyncio.to_thread(run_loads)
        witnesses.stop()
        if sampler is not None:
            sampler.join()
        await server.stop()

    uvloop.run(scenario())
    music = results["music"]
    print(
        f"ensemble: p50 {music['p50_us']} us, p99 {music['p99_us']} us, max {music['max_us']} "
        f"us, lost {music['lost']}, reordered {music['reordered']}"
    )
    print(witnesses.report())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
