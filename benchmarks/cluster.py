"""The cluster on Redis, in one run: what a delivery across nodes adds to one on the same node,
and the capacity of `--workers 1` against `--workers 2` with the load spread over many groups.

    .venv/bin/python benchmarks/cluster.py            results/cluster.md (about 25 minutes)
    .venv/bin/python benchmarks/cluster.py --pinned   results/workers-pinned.md (about 10)
    .venv/bin/python benchmarks/cluster.py --smoke    a short run that checks it works (CI)

Latency: two nodes on one redis-server; one group with a sender and a listener on node 1 and a
listener on node 2; the sender plays 200 messages/s of 100 bytes for 10 s. Both listeners live
in the load process with the sender, so a send and its arrivals are timed on one clock; the
same-node figure is the yardstick, measured in the same run. Three runs.

Capacity: benchmarks/loadgen.c (as in the main benchmark) drives one port of `tcposcrouter
--cluster … --workers N` with 64 groups of 8 users, 2 senders each, raising the load by 1.5x
until a run loses, reorders or queues for more than 100 ms; the kernel spreads the connections
over the workers (SO_REUSEPORT), and each worker hands the connections of groups it does not
own to the one that does (server/handoff.py), so a group's packets stay in one process. The
same sweep on a single process without --cluster is the reference. redis-server, the workers
and the load generator share the machine's cores.

With --pinned: one process against `--workers 2` without Redis, the router's processes held to
CPU 0 and the load generator to CPU 1 (`taskset`), so that the load generator has a core of its
own; and `--workers 2` without Redis sharing both cores with it, as in the main sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from run import LOADGEN, more_open_files, passed, prepare  # noqa: E402
from support.client import AsyncClient  # noqa: E402
from support.process import cpu_seconds, free_port, wait_until_listening, with_children  # noqa: E402
from tcposcrouter.osc.messages import build_message  # noqa: E402

RESULTS = HERE / "results"
RATE, SIZE = 200, 100
STAMP_AT = 8 + 8 + 4  # "/lat", ",ids", the int: then the send time (a double)
GROUPS, USERS, SENDERS = 64, 8, 2
START_RATE = 40.0  # messages/s per sender: 64 x 2 x 7 x 40 = 35,840 deliveries/s
STEPS = 14


def start_redis(port: int, folder: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until_listening(process, [port])
    return process


def start_router(port: int, *extra: str, cpu: str | None = None) -> subprocess.Popen[bytes]:
    pin = [] if cpu is None else ["taskset", "-c", cpu]  # its workers inherit the affinity
    process = subprocess.Popen(
        [*pin, sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(port),
         "--disable-osc11", "--no-http", "--no-rate-limit", "--max-connections", "0",
         "--max-connections-per-address", "0", "--max-unregistered-per-address", "0", "-q",
         *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=more_open_files,
    )  # fmt: skip
    wait_until_listening(process, [port], timeout=20)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _latency(port1: int, port2: int, seconds: float) -> dict[str, Any]:
    group = f"lat-{time.monotonic_ns()}"
    sender = await AsyncClient.open(port1, "127.0.0.1")
    near = await AsyncClient.open(port1, "127.0.0.1")
    far = await AsyncClient.open(port2, "127.0.0.1")
    for client, name in ((sender, "sender"), (near, "near"), (far, "far")):
        await client.register(name, group)
    await asyncio.sleep(1.0)  # every node knows every member
    count = int(RATE * seconds)
    delays: dict[str, list[float]] = {"near": [], "far": []}

    async def listen(client: AsyncClient, name: str) -> None:
        while len(delays[name]) < count:
            packet = await client.recv()
            if packet.startswith(b"/lat"):
                (stamp,) = struct.unpack_from(">d", packet, STAMP_AT)
                delays[name].append((time.perf_counter() - stamp) * 1e6)

    listeners = [asyncio.create_task(listen(near, "near")), asyncio.create_task(listen(far, "far"))]
    padding = "x" * (SIZE - 32)
    start = time.perf_counter()
    for number in range(count):
        due = start + number / RATE
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        sender.send(build_message("/lat", ("i", number), ("d", time.perf_counter()),
                                  ("s", padding)))  # fmt: skip
        await sender.writer.drain()
    await asyncio.wait_for(asyncio.gather(*listeners), 30)
    for client in (sender, near, far):
        client.close()
    return {
        name: {"p50_us": percentile(values, 0.5), "p99_us": percentile(values, 0.99),
               "count": len(values)}
        for name, values in delays.items()
    }  # fmt: skip


def latency_run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        redis_port, port1, port2 = free_port(), free_port(), free_port()
        redis = start_redis(redis_port, folder)
        url = f"redis://127.0.0.1:{redis_port}/0"
        nodes = [start_router(port, "--cluster", url, "--node-id", f"n{index}")
                 for index, port in ((1, port1), (2, port2))]  # fmt: skip
        try:
            return asyncio.run(_latency(port1, port2, seconds))
        finally:
            for process in nodes:
                stop(process)
            stop(redis)


def flow_run(
    workers: int, rate: float, seconds: float, *, cluster: bool = True, pinned: bool = False
) -> dict[str, Any]:
    """One loadgen flow against a router of `workers` processes (0: one, without --cluster),
    on Redis if `cluster`; `pinned`: the router on CPU 0, the load generator on CPU 1."""
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        redis = None
        extra: list[str] = []
        if workers:
            extra = ["--workers", str(workers), "--node-id", "bench"]
        if workers and cluster:
            redis_port = free_port()
            redis = start_redis(redis_port, folder)
            extra += ["--cluster", f"redis://127.0.0.1:{redis_port}/0"]
        router = start_router(port, *extra, cpu="0" if pinned else None)
        time.sleep(1.0 if workers else 0.2)  # every worker listening
        try:
            load = subprocess.Popen(
                [*(["taskset", "-c", "1"] if pinned else []), str(LOADGEN), "flow", "127.0.0.1",
                 str(port), str(GROUPS), str(USERS), str(SENDERS), str(rate), str(SIZE),
                 str(seconds), "batched"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                preexec_fn=more_open_files,
            )  # fmt: skip
            assert load.stdout is not None and load.stderr is not None
            load.stdout.readline()  # {"registered": N}: the flow starts now
            routers = with_children(router.pid)
            before = cpu_seconds(routers), cpu_seconds([] if redis is None else [redis.pid])
            line = load.stdout.readline()
            after = cpu_seconds(routers), cpu_seconds([] if redis is None else [redis.pid])
            error = load.stderr.read()
            load.wait(120)
            load.stdout.close()
            load.stderr.close()
            result: dict[str, Any] = json.loads(line) if line else {"error": error.strip()[-300:]}
            result["router_cpu_seconds"] = after[0] - before[0]
            result["redis_cpu_seconds"] = after[1] - before[1]
        finally:
            stop(router)
            if redis is not None:
                stop(redis)
    result.update(workers=workers, rate=rate)
    return result


def sweep(
    workers: int, seconds: float, steps: int, *, cluster: bool = True, pinned: bool = False
) -> list[dict[str, Any]]:
    runs = []
    rate = START_RATE
    for _ in range(steps):
        run = flow_run(workers, rate, seconds, cluster=cluster, pinned=pinned)
        runs.append(run)
        label = f"workers {workers}" if workers else "one process"
        label += "" if cluster or not workers else " (no Redis)"
        label += ", pinned" if pinned else ""
        print(f"    {label:30} {rate * GROUPS * SENDERS * (USERS - 1):>10,.0f} offered/s: "
              f"{summary(run)}", flush=True)  # fmt: skip
        if not passed(run):
            break
        rate *= 1.5
    return runs


def summary(run: dict[str, Any]) -> str:
    if "error" in run:
        return "error: " + str(run["error"])
    return (
        f"{run['delivered_per_s']:>10,.0f} delivered/s, lost {run['lost']}, "
        f"reordered {run['reordered']}, p50 {run['p50_us']} us, p99 {run['p99_us']} us"
    )


def capacity(runs: list[dict[str, Any]]) -> float:
    good = [run["delivered_per_s"] for run in runs if passed(run)]
    return max(good, default=0.0)


def cost_us(runs: list[dict[str, Any]], field: str) -> float:
    """CPU microseconds per delivery at the highest load kept."""
    good = [run for run in runs if passed(run)]
    if not good:
        return 0.0
    best = max(good, key=lambda run: run["delivered_per_s"])
    return 1e6 * float(best[field]) / max(1, int(best["received"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run that checks it works")
    parser.add_argument(
        "--pinned", action="store_true", help="the load generator on a core of its own"
    )
    args = parser.parse_args()
    repeat, seconds, steps = (1, 1.0, 2) if args.smoke else (3, 10.0, STEPS)
    prepare()  # compiles the load generator
    if args.pinned:
        return pinned_sweeps(repeat, steps)
    print("cross-node latency:", flush=True)
    latency = []
    for index in range(repeat):
        run = latency_run(seconds)
        latency.append(run)
        print(f"  run {index + 1}: same node p50 {run['near']['p50_us']:.0f} us p99 "
              f"{run['near']['p99_us']:.0f} us; other node p50 {run['far']['p50_us']:.0f} us "
              f"p99 {run['far']['p99_us']:.0f} us", flush=True)  # fmt: skip
    print("capacity:", flush=True)
    sweeps: dict[int, list[list[dict[str, Any]]]] = {0: [], 1: [], 2: []}
    for _ in range(repeat):
        for workers in (0, 1, 2):
            sweeps[workers].append(sweep(workers, 2.0 if args.smoke else 5.0, steps))
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "latency": latency,
        "capacity": {str(w): [capacity(s) for s in runs] for w, runs in sweeps.items()},
        "router_cpu_us": {
            str(w): [cost_us(s, "router_cpu_seconds") for s in runs] for w, runs in sweeps.items()
        },
        "redis_cpu_us": {
            str(w): [cost_us(s, "redis_cpu_seconds") for s in runs] for w, runs in sweeps.items()
        },
    }
    if args.smoke:
        # Nothing lost or reordered; the latency bound is the full run's business (a CI
        # machine busy with other jobs may queue a smoke run for a moment).
        ok = all(run["far"]["count"] == run["near"]["count"] > 0 for run in latency) and all(
            "error" not in runs[0]
            and runs[0]["lost"] == runs[0]["reordered"] == 0
            and runs[0]["received"] >= runs[0]["expected"]
            for all_runs in sweeps.values()
            for runs in all_runs
        )
        print("smoke:", "ok" if ok else "FAILED")
        return 0 if ok else 1
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "cluster.md").write_text(render(report))
    print((RESULTS / "cluster.md").read_text())
    return 0


PINNED = {
    "one, pinned": {"workers": 0, "pinned": True},
    "workers 2, pinned": {"workers": 2, "cluster": False, "pinned": True},
    "workers 2": {"workers": 2, "cluster": False},
}


def pinned_sweeps(repeat: int, steps: int) -> int:
    sweeps: dict[str, list[list[dict[str, Any]]]] = {key: [] for key in PINNED}
    for _ in range(repeat):
        for key, setup in PINNED.items():
            sweeps[key].append(sweep(seconds=5.0, steps=steps, **setup))  # type: ignore[arg-type]
    report: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "capacity": {key: [capacity(s) for s in runs] for key, runs in sweeps.items()},
        "router_cpu_us": {
            key: [cost_us(s, "router_cpu_seconds") for s in runs] for key, runs in sweeps.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "workers-pinned.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Workers with the load generator on a core of its own ({report['when']}, "
        f"{report['machine']['cpus']} cores, Python {report['machine']['python']})",
        "",
        f"{GROUPS} groups of {USERS}, {SENDERS} senders each; deliveries/s kept without loss, "
        "reordering or 100 ms of queueing, median [range] of "
        f"{repeat} sweeps; pinned: the router's processes on CPU 0 (`taskset -c 0`), the load "
        "generator on CPU 1.",
        "",
        "| router | deliveries/s | router CPU µs/delivery |",
        "|---|---:|---:|",
        *(
            f"| {key} | {statistics.median(report['capacity'][key]):,.0f} "
            f"[{min(report['capacity'][key]):,.0f} to {max(report['capacity'][key]):,.0f}] "
            f"| {statistics.median(report['router_cpu_us'][key]):.2f} |"
            for key in PINNED
        ),
        "",
    ]
    (RESULTS / "workers-pinned.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def render(report: dict[str, Any]) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} [{min(values):,.0f} to {max(values):,.0f}]"

    def cost(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    near = report["latency"]
    lines = [
        f"# Cluster benchmark ({report['when']}, {report['machine']['cpus']} cores, Python "
        f"{report['machine']['python']})",
        "",
        f"Latency, one sender at {RATE} msg/s of {SIZE} B for 10 s, median of "
        f"{len(near)} runs [range], µs:",
        "",
        "| receiver | p50 | p99 |",
        "|---|---:|---:|",
        f"| same node | {med([r['near']['p50_us'] for r in near])} | "
        f"{med([r['near']['p99_us'] for r in near])} |",
        f"| other node (through Redis) | {med([r['far']['p50_us'] for r in near])} | "
        f"{med([r['far']['p99_us'] for r in near])} |",
        "",
        f"Capacity, {GROUPS} groups of {USERS}, {SENDERS} senders each, deliveries/s kept "
        "without loss, reordering or 100 ms of queueing, median [range]:",
        "",
        "| router | deliveries/s | router CPU µs/delivery | Redis CPU µs/delivery |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {med(report['capacity'][key])} | {cost(report['router_cpu_us'][key])} "
            f"| {cost(report['redis_cpu_us'][key])} |"
            for key, label in (
                ("0", "one process, no cluster"),
                ("1", "--cluster --workers 1"),
                ("2", "--cluster --workers 2"),
            )
        ),
        "",
        "CPU per delivery is at the highest load kept, all router processes together.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
