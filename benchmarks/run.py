"""The tcposcrouter benchmark: this router against the original 0.2.0 and two byte-copy relays.

    scripts/bench            the full run (about 30 minutes; 45 with --baseline), in results/
    scripts/bench --smoke    a tiny run that only checks the benchmark still works (CI)

Servers, each restarted for every run, alternated within each repetition so that ratios compare
runs made back to back:

* original      tcposcrouter 0.2.0 from PyPI, in a virtualenv of its own (length-prefix port:
                its SLIP port is broken with today's dependencies);
* c_relay       benchmarks/c_relay.c: one thread, epoll, register reply and user lists, then raw
                bytes, one send per receiver per epoll round: the physical limit of the machine;
* py_relay      benchmarks/yardstick_relay.py: the same in Python on uvloop, the least any
                Python router can cost;
* tcposcrouter  this router, with the rate limits and the connection limits off (a benchmark is
                one host sending as fast as it can; every packet is still validated);
* baseline      only with --baseline SRC: the router from another source tree (an earlier
                commit, say), run the same way, to see what a change did in the same run.

Load comes from benchmarks/loadgen.c (compiled here), in two regimes: "batched" (a sender writes
all the messages it is due with one send) and "each" (every message its own send, as sclang and
Pd send them). The C relay's capacity shows how far the load generator reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS = HERE / "results"
LOADGEN = OUT / "loadgen"
C_RELAY = OUT / "c_relay"
ORIGINAL_VENV = OUT / "original-venv"
SERVERS: tuple[str, ...] = ("original", "c_relay", "py_relay", "tcposcrouter")
BASELINE_SOURCE: Path | None = None  # --baseline: its src/ folder
YARDSTICKS = ("c_relay", "py_relay")
# The capacity sweep multiplies the offered load by 1.5 per step, from a start chosen so that
# the steps pass exactly through 2, 3 and 4.5 million deliveries/s (1 group x 16, 4 senders).
CAPACITY_START_RATE = 50_000 / 1.5**8  # messages/s per sender: 117,055 deliveries/s
CAPACITY_STEPS = 15

Run = dict[str, Any]


def router_flags(port: int) -> list[str]:
    """The router as every benchmark runs it: the rate, connection and group limits off (a
    benchmark is one host sending as fast as it can; every packet is still validated)."""
    return [
        "--host", "127.0.0.1", "--osc-port", str(port), "--disable-osc11", "--no-rate-limit",
        "--max-connections-per-address", "0", "--max-unregistered-per-address", "0",
        "--max-connections", "0", "--max-groups", "0", "-q", "--no-http",
    ]  # fmt: skip


def router_command(
    port: int, source: Path | None = None, http_port: int | None = None, token: str = ""
) -> list[str]:
    """The router as the benchmarks run it, from this checkout's installed package or from
    another checkout's `source` (its src/ folder); with `http_port`, its HTTP side on."""
    flags = router_flags(port)
    if http_port is not None:
        flags = [f for f in flags if f != "--no-http"]
        flags += ["--http-port", str(http_port), "--admin-token", token]
    prefix = [] if source is None else ["env", f"PYTHONPATH={source}"]
    return [*prefix, sys.executable, "-m", "tcposcrouter", *flags]


# Servers other scripts add (benchmarks/latency_profile.py's stamped router): name -> command.
EXTRA_COMMANDS: dict[str, Callable[[int], list[str]]] = {}

# The test-support package is shared with the test suite and the soak tool.
sys.path.insert(0, str(ROOT / "tests"))

from support.process import (  # noqa: E402
    cpu_times,
    free_port,
    rss_kib,
    wait_until_listening,
    with_children,
)

# Open files a benchmark's process may have: a crowd of 20,000 connections is that many sockets
# in the router and in the load generators together.
OPEN_FILES = 65_536


def more_open_files() -> None:
    """As many open files as the hard limit allows, raised to OPEN_FILES where this process
    may raise it (as root)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def prepare() -> None:
    OUT.mkdir(exist_ok=True)
    for binary in (LOADGEN, C_RELAY):
        source = HERE / f"{binary.name}.c"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)], check=True)
    if not (ORIGINAL_VENV / "bin" / "tcposcrouter").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINAL_VENV)], check=True)
        subprocess.run(
            [str(ORIGINAL_VENV / "bin" / "pip"), "install", "-q", "tcposcrouter==0.2.0"],
            check=True,
        )


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    logs: tempfile.TemporaryDirectory[str]

    @classmethod
    def start(cls, name: str, cpus: str | None = None) -> Server:
        """Start `name` on a free port (held to the CPUs `cpus`, as taskset names them, if
        given); try again on another port if it does not come up (a port found free can be
        taken by someone else before the server binds it)."""
        for attempt in range(3):
            try:
                return cls._start(name, cpus)
            except RuntimeError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _start(cls, name: str, cpus: str | None) -> Server:
        port = free_port()
        logs = tempfile.TemporaryDirectory()
        if name == "original":
            command = [
                str(ORIGINAL_VENV / "bin" / "tcposcrouter"),
                "--osc-port", str(port), "--disable-osc11", "--log-dir", logs.name,
            ]  # fmt: skip
        elif name == "c_relay":
            command = [str(C_RELAY), str(port)]
        elif name == "py_relay":
            command = [sys.executable, str(HERE / "yardstick_relay.py"), str(port)]
        elif name in EXTRA_COMMANDS:
            command = EXTRA_COMMANDS[name](port)
        else:  # tcposcrouter, or the baseline from another source tree
            command = router_command(port)
        env = dict(os.environ)
        if name == "baseline":
            assert BASELINE_SOURCE is not None
            env["PYTHONPATH"] = str(BASELINE_SOURCE)
        if cpus is not None:  # a router's --workers inherit the affinity
            command = ["taskset", "-c", cpus, *command]
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=more_open_files,
            env=env,
        )
        try:
            wait_until_listening(process, [port], timeout=20)
        except RuntimeError:
            if process.poll() is None:
                process.kill()
                process.wait()
            logs.cleanup()
            raise RuntimeError(f"{name} did not start") from None
        return cls(name, process, port, logs)

    def cpu_seconds(self) -> float:
        """The CPU time the server has used, its --workers' included."""
        return sum(self.cpu_times())

    def cpu_times(self) -> tuple[float, float]:
        """The CPU time the server has used in user space and in the kernel, its --workers'
        included."""
        return cpu_times(with_children(self.process.pid))

    def memory_kib(self, field: str = "VmHWM") -> int:
        return rss_kib(self.process.pid, field)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.logs.cleanup()


def flow(
    server: str,
    groups: int,
    users: int,
    senders: int,
    rate: float,
    size: int,
    seconds: float,
    writes: str = "batched",
    *,
    server_cpus: str | None = None,
    loadgen_cpus: str | None = None,
) -> Run:
    srv = Server.start(server, server_cpus)
    try:
        pin = [] if loadgen_cpus is None else ["taskset", "-c", loadgen_cpus]
        proc = subprocess.Popen(
            [*pin, str(LOADGEN), "flow", "127.0.0.1", str(srv.port), str(groups), str(users),
             str(senders), str(rate), str(size), str(seconds), writes],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=more_open_files,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()  # {"registered": N}: the flow starts now
        user, system = srv.cpu_times()
        line = proc.stdout.readline()
        user_after, system_after = srv.cpu_times()
        user, system = user_after - user, system_after - system
        error = proc.stderr.read()
        proc.wait(60)
        proc.stdout.close()
        proc.stderr.close()
        result: Run = json.loads(line) if line else {"error": error.strip()[-300:]}
        # CPU over the flow and its drain; the loadgen's own figure of the flow time.
        result["server_cpu_percent"] = 100 * (user + system) / seconds
        result["server_user_percent"] = 100 * user / seconds
        result["server_peak_rss_kib"] = srv.memory_kib()
    finally:
        srv.stop()
    result.update(
        server=server, groups=groups, users=users, senders=senders, rate=rate, size=size,
        writes=writes,
    )  # fmt: skip
    return result


def passed(run: Run) -> bool:
    """Below capacity: everything delivered, in order, with queueing delay under 100 ms."""
    return (
        "error" not in run
        and run["lost"] == 0
        and run["reordered"] == 0
        and run["p99_us"] < 100_000
        and run["received"] >= run["expected"]
    )


def capacity_sweep(server: str, seconds: float, smoke: bool, writes: str) -> list[Run]:
    """Raise the offered load by 1.5x until the server no longer keeps up."""
    rate = 50.0 if server == "original" else CAPACITY_START_RATE
    runs: list[Run] = []
    for _ in range(2 if smoke else CAPACITY_STEPS):
        run = flow(server, 1, 16, 4, rate, 100, seconds, writes)
        runs.append(run)
        print(f"    {server:13} {rate * 60:>10,.0f} offered/s: {summary(run)}", flush=True)
        if not passed(run):
            break
        rate *= 1.5
    return runs


def summary(run: Run) -> str:
    if "error" in run:
        return "error: " + str(run["error"])
    return (
        f"{run['delivered_per_s']:>10,.0f} delivered/s, lost {run['lost']}, "
        f"reordered {run['reordered']}, p50 {run['p50_us']} us, p99 {run['p99_us']} us, "
        f"cpu {run['server_cpu_percent']:.0f}%"
    )


def idle(server: str, groups: int, users: int, hold: float) -> Run:
    srv = Server.start(server)
    try:
        time.sleep(0.3)
        before = srv.memory_kib("VmRSS")
        proc = subprocess.Popen(
            [str(LOADGEN), "idle", "127.0.0.1", str(srv.port), str(groups), str(users), str(hold)],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=more_open_files,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        run: Run = json.loads(line) if line else {"error": "loadgen failed"}
        time.sleep(min(1.0, hold / 2))
        after = srv.memory_kib("VmRSS")
        proc.wait(hold + 60)
        proc.stdout.close()
    finally:
        srv.stop()
    run.update(server=server, rss_before_kib=before, rss_after_kib=after)
    if "connections" in run:
        run["rss_per_connection_kib"] = (after - before) / run["connections"]
    return run


def median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks it works")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--report", action="store_true", help="only render the table and plot of the last run"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="also run the router of another checkout (its src/ is put on PYTHONPATH)",
    )
    args = parser.parse_args()
    if args.report:
        return report_only()
    global SERVERS, BASELINE_SOURCE
    if args.baseline is not None:
        BASELINE_SOURCE = (args.baseline / "src").resolve()
        SERVERS = (*SERVERS, "baseline")
    smoke = args.smoke
    repeat = 1 if smoke else args.repeat
    seconds = 0.5 if smoke else 3.0
    prepare()

    raw: dict[str, list[Run]] = {}
    for rep in range(repeat):
        print(f"repetition {rep + 1} of {repeat}", flush=True)
        jobs: list[tuple[str, Callable[[str], list[Run]]]] = [
            ("capacity", lambda s: capacity_sweep(s, seconds, smoke, "batched")),
            ("capacity_each", lambda s: capacity_sweep(s, seconds, smoke, "each")),
            ("ensemble", lambda s: [flow(s, 1, 8, 8, 50, 100, 2 if smoke else 10)]),
            ("many_groups", lambda s: [flow(s, 200, 4, 1, 20, 100, 2 if smoke else 10)]),
            ("big_messages", lambda s: [flow(s, 1, 16, 1, 5, 65536, 2 if smoke else 10)]),
            ("idle", lambda s: [idle(s, 10 if smoke else 250, 20, 2)]),
            ("storm", lambda s: [idle(s, 5 if smoke else 50, 20, 0.5)]),
        ]
        for scenario, job in jobs:
            print(f"  {scenario}", flush=True)
            for server in SERVERS:
                runs = job(server)
                for run in runs:
                    run["repetition"] = rep
                if not scenario.startswith("capacity"):
                    print(f"    {server:13} {runs[-1]}", flush=True)
                raw.setdefault(scenario, []).extend(runs)

    report = summarise(raw, repeat)
    target = OUT if smoke else RESULTS
    target.mkdir(exist_ok=True)
    machine = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    (target / "latest.json").write_text(
        json.dumps({"machine": machine, "summary": report, "runs": raw}, indent=1)
    )
    table = render_table(report, machine)
    (target / "latest.md").write_text(table)
    print(table)
    plot(raw, target / "latest.png", machine)
    return 0 if smoke_checks(report) else 1


def report_only() -> int:
    """Render latest.md and latest.png again from the runs in latest.json."""
    global SERVERS
    saved = json.loads((RESULTS / "latest.json").read_text())
    runs, machine = saved["runs"], saved["machine"]
    present = {r["server"] for scenario in runs.values() for r in scenario}
    SERVERS = tuple(s for s in (*SERVERS, "baseline") if s in present)
    report = summarise(runs, 1 + max(r["repetition"] for r in runs["capacity"]))
    saved["summary"] = report
    (RESULTS / "latest.json").write_text(json.dumps(saved, indent=1))
    table = render_table(report, machine)
    (RESULTS / "latest.md").write_text(table)
    print(table)
    plot(runs, RESULTS / "latest.png", machine)
    return 0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def summarise(raw: dict[str, list[Run]], repeat: int) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for server in SERVERS:
        entry: dict[str, Any] = {}
        for scenario, key in (("capacity", "capacity"), ("capacity_each", "capacity_each")):
            capacities = []
            for rep in range(repeat):
                good = [
                    r["delivered_per_s"]
                    for r in raw.get(scenario, [])
                    if r["server"] == server and r["repetition"] == rep and passed(r)
                ]
                capacities.append(max(good) if good else 0.0)
            entry[key] = median_range(capacities)
        for scenario in ("ensemble", "many_groups", "big_messages"):
            runs = [r for r in raw[scenario] if r["server"] == server and "error" not in r]
            if runs:
                entry[scenario] = {
                    key: median_range([float(r[key]) for r in runs])
                    for key in ("p50_us", "p99_us", "p999_us", "lost", "reordered",
                                "server_cpu_percent", "server_peak_rss_kib")
                }  # fmt: skip
                worst = max(float(r["lost"] + r["reordered"]) for r in runs)
                entry[scenario]["faults"] = {"median": worst, "min": worst, "max": worst}
        for scenario, key in (("idle", "rss_per_connection_kib"), ("storm", "all_registered_s")):
            values = [float(r[key]) for r in raw[scenario] if r["server"] == server and key in r]
            if values:
                entry[scenario] = median_range(values)
        report[server] = entry
    return report


TITLES = {
    "original": "original 0.2.0",
    "c_relay": "C relay",
    "py_relay": "Python relay",
    "tcposcrouter": "tcposcrouter",
    "baseline": "baseline",
}


def render_table(report: dict[str, dict[str, Any]], machine: dict[str, Any]) -> str:
    def med(server: str, *path: str) -> float | None:
        node: Any = report[server]
        for key in path:
            if key not in node:
                return None
            node = node[key]
        return float(node["median"])

    def cell(server: str, *path: str, fmt: str = "{:,.0f}") -> str:
        node: Any = report[server]
        for key in path:
            if key not in node:
                return "—"
            node = node[key]
        return f"{fmt.format(node['median'])} ({fmt.format(node['min'])}-{fmt.format(node['max'])})"

    lines = [
        f"# Benchmark results, {machine['date']}",
        "",
        f"{machine['cores']} cores ({machine['cpu']}), Python {machine['python']}, "
        f"Linux {machine['kernel']}. Medians, (min-max) over the repetitions.",
        "",
        "| | " + " | ".join(TITLES[s] for s in SERVERS) + " |",
        "|---|" + "---|" * len(SERVERS),
    ]
    rows: list[tuple[str, tuple[str, ...], str]] = [
        ("capacity, batched writes, deliveries/s (1 x 16, 4 senders, 100 B)", ("capacity",),
         "{:,.0f}"),
        ("capacity, one message per write, deliveries/s", ("capacity_each",), "{:,.0f}"),
    ]  # fmt: skip
    for scenario, title in (
        ("ensemble", "ensemble (1 group x 8, 8 senders x 50/s)"),
        ("many_groups", "200 groups x 4 (1 sender each, 20/s)"),
        ("big_messages", "64 KB x 5/s to 16 users"),
    ):
        rows += [
            (f"{title}: p50 us", (scenario, "p50_us"), "{:,.0f}"),
            (f"{title}: p99 us", (scenario, "p99_us"), "{:,.0f}"),
            (f"{title}: p99.9 us", (scenario, "p999_us"), "{:,.0f}"),
            (f"{title}: lost + reordered, worst run", (scenario, "faults"), "{:,.0f}"),
            (f"{title}: server CPU %", (scenario, "server_cpu_percent"), "{:,.1f}"),
            (f"{title}: server peak RSS KiB", (scenario, "server_peak_rss_kib"), "{:,.0f}"),
        ]
    rows += [
        ("RSS per idle registered connection, KiB (5,000)", ("idle",), "{:,.1f}"),
        ("connection storm: 1,000 register at once, s", ("storm",), "{:,.3f}"),
    ]  # fmt: skip
    for label, path, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(cell(s, *path, fmt=fmt) for s in SERVERS) + " |")
    lines.append("")
    lines.append("tcposcrouter against the others (ratios of medians):")
    lines.append("")
    for key, what in (("capacity", "capacity, batched"), ("capacity_each", "capacity, each")):
        ours = med("tcposcrouter", key)
        for other in ("original", *YARDSTICKS, "baseline"):
            if other not in SERVERS:
                continue
            theirs = med(other, key)
            if ours and theirs:
                lines.append(f"- {what}: tcposcrouter / {TITLES[other]} = {ours / theirs:,.2f}")
    for scenario in ("ensemble", "many_groups", "big_messages"):
        for key in ("p50_us", "p99_us"):
            ours_l = med("tcposcrouter", scenario, key)
            for other in (*YARDSTICKS, "baseline"):
                if other not in SERVERS:
                    continue
                theirs = med(other, scenario, key)
                if ours_l and theirs:
                    lines.append(
                        f"- {scenario} {key[:3]}: tcposcrouter / {TITLES[other]} = "
                        f"{ours_l / theirs:.2f}"
                    )
    faults = 0.0
    for scenario in ("ensemble", "many_groups", "big_messages"):
        node = report["tcposcrouter"].get(scenario, {})
        faults += node.get("lost", {}).get("max", 0) + node.get("reordered", {}).get("max", 0)
    lines.append(
        f"- messages lost or reordered by tcposcrouter in the latency scenarios: {faults:.0f}"
    )
    return "\n".join(lines) + "\n"


def plot(raw: dict[str, list[Run]], path: Path, machine: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colours = {
        "original": "tab:red",
        "c_relay": "tab:green",
        "py_relay": "tab:grey",
        "tcposcrouter": "tab:blue",
        "baseline": "tab:purple",
    }
    for row, (scenario, regime) in enumerate(
        (("capacity", "batched writes"), ("capacity_each", "one message per write"))
    ):
        rate_ax, lat_ax = axes[row]
        for server in SERVERS:
            runs = [r for r in raw.get(scenario, []) if r["server"] == server and "error" not in r]
            reps = sorted({r["repetition"] for r in runs})
            for rep in reps:
                mine = sorted(
                    (r for r in runs if r["repetition"] == rep),
                    key=lambda r: r["offered_deliveries_per_s"],
                )
                x = [r["offered_deliveries_per_s"] for r in mine]
                first = rep == reps[0]
                rate_ax.plot(
                    x, [r["delivered_per_s"] for r in mine], "o-", color=colours[server],
                    label=TITLES[server] if first else None, alpha=0.7,
                )  # fmt: skip
                for key, style in (("p50_us", "o-"), ("p99_us", "s--")):
                    lat_ax.plot(
                        x, [max(1, r[key]) / 1000 for r in mine], style, color=colours[server],
                        label=f"{TITLES[server]} {key[:-3]}" if first else None, alpha=0.7,
                    )  # fmt: skip
        for ax in (rate_ax, lat_ax):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"offered deliveries/s (1 x 16 users, 4 senders, 100 B, {regime})")
            ax.grid(True, which="both", alpha=0.3)
        rate_ax.set_ylabel("delivered/s")
        rate_ax.legend(fontsize=8)
        lat_ax.set_ylabel("latency, ms")
        lat_ax.legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"tcposcrouter benchmark, {machine['date']}, {machine['cores']} cores, {machine['cpu']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def smoke_checks(report: dict[str, dict[str, Any]]) -> bool:
    ok = True
    for server in SERVERS:
        for key in ("capacity", "capacity_each"):
            if not report[server][key]["median"]:
                print(f"FAILED: {server} passed no {key} step")
                ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
