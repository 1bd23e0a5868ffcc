"""Where the microseconds of the ensemble scenario go: the router against the C relay, and the
router's own share taken apart.

    .venv/bin/python benchmarks/latency_profile.py [--repeat 5]   results/latency-profile.md

The ensemble of the main benchmark (one group of 8, 8 senders x 50 messages/s of 100 bytes,
10 s, benchmarks/loadgen.c) runs against the C relay, the Python relay (the least any Python
router on uvloop can cost), the router, and the router built up in steps (the "serve" mode of
this script, the hub skipped for registered connections; registering goes through it):

  shell    each read written as it came to the group's other connections: no framing,
           validation or outbox; what the router's own transport costs;
  +decode  the same, after the read's packets are taken out of their frames and validated
           (`decoder.feed`, `validate_packet`) as the hub does;
  +outbox  the shell with the outbox instead of the decoding: the read's packets (split by
           their length prefix, not checked) queued for the receivers and written at the end of
           the loop turn (`Outbox.deliver_run`, the router's flush);

and the router with stamps taken inside it (the "serve" mode, two methods wrapped). For each,
the server's CPU time per message. Every message carries the time it was due to be
sent, on the monotonic clock that both processes read, so the stamped router can say for each
message:

  before   due -> the router's `data_received` starts (the sender's lateness, its send, the
           kernel's loopback, the loop waking up and reading);
  receive  `data_received`: framing, validation, routing into the outbox;
  turn     from there to the flush at the end of the loop turn;
  write    the flush: one write per receiver into the kernel;
and the load generator gives the whole way, due -> arrival. A cProfile run of the same scenario
(its own overhead makes its absolute times larger) ranks the functions by their own time.
Alternating repetitions; medians.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402

STAMPS_FILE = "TCPOSCROUTER_STAMPS"  # where the stamped router writes its summary
PROFILE_FILE = "TCPOSCROUTER_CPROFILE"  # where the profiled router writes its ranking
SHELL_ONLY = "TCPOSCROUTER_SHELL_ONLY"  # copy, decode or outbox: the router's shell, no hub
SERVERS = {
    "c_relay": "C relay",
    "py_relay": "Python relay",
    "shell": "tcposcrouter's shell alone (no hub)",
    "shell_decode": "shell + decoding and validation",
    "shell_outbox": "shell + outbox and flush at the turn's end",
    "tcposcrouter": "tcposcrouter",
    "stamped": "tcposcrouter, stamped",
}
SHELL_MODES = {"shell": "copy", "shell_decode": "decode", "shell_outbox": "outbox"}
SECONDS = 10


def percentiles(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50_us": 0.0, "p99_us": 0.0}
    return {
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000,
    }


def serve(flags: list[str]) -> int:
    """Run the router with stamps (or under cProfile); write the summary when it stops."""
    from tcposcrouter.cli.router import main as router_main
    from tcposcrouter.server.app import RouterServer
    from tcposcrouter.server.tcp import TcpConnection

    stamps_path = os.environ.get(STAMPS_FILE)
    profile_path = os.environ.get(PROFILE_FILE)
    parts: dict[str, list[int]] = {"before": [], "receive": [], "turn": [], "write": []}
    reads_per_flush: list[int] = []
    waiting: list[tuple[int, int, int]] = []  # (due, read started, read done) this turn
    reads_this_turn = 0
    original_receive = TcpConnection.data_received
    original_flush = RouterServer._flush

    def data_received(self: TcpConnection, data: bytes) -> None:
        nonlocal reads_this_turn
        started = time.monotonic_ns()
        original_receive(self, data)
        done = time.monotonic_ns()
        reads_this_turn += 1
        at = 0
        while at + 36 <= len(data):  # length-prefixed /bench packets, due time at 24
            size = int.from_bytes(data[at : at + 4], "big")
            if data[at + 4 : at + 10] == b"/bench":
                due = int.from_bytes(data[at + 28 : at + 36], "big")
                waiting.append((due, started, done))
            at += 4 + size

    def flush(self: RouterServer) -> None:
        nonlocal reads_this_turn
        started = time.monotonic_ns()
        original_flush(self)
        done = time.monotonic_ns()
        for due, read, received in waiting:
            parts["before"].append(read - due)
            parts["receive"].append(received - read)
            parts["turn"].append(started - received)
            parts["write"].append(done - started)
        if waiting:
            reads_per_flush.append(reads_this_turn)
        waiting.clear()
        reads_this_turn = 0

    if stamps_path:
        TcpConnection.data_received = data_received  # type: ignore[method-assign]
        RouterServer._flush = flush  # type: ignore[method-assign]
    shell_mode = os.environ.get(SHELL_ONLY)
    if shell_mode:
        shelled = _shell_only(original_receive, shell_mode)
        TcpConnection.data_received = shelled  # type: ignore[method-assign]
    profiler = cProfile.Profile() if profile_path else None
    if profiler is not None:
        profiler.enable()
    status = router_main(flags)
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        Path(profile_path or "").write_text(text.getvalue())
    if stamps_path:
        summary: dict[str, Any] = {name: percentiles(v) for name, v in parts.items()}
        summary["messages"] = len(parts["before"])
        summary["reads_per_flush_mean"] = (
            statistics.mean(reads_per_flush) if reads_per_flush else 0.0
        )
        Path(stamps_path).write_text(json.dumps(summary))
    return status


def _shell_only(receive: Any, mode: str) -> Any:
    """`data_received` that skips the hub for a registered connection: each read written as it
    came to the other connections of its group ("copy"), after its packets are decoded and
    validated ("decode"), or its packets queued in the outbox for the flush at the end of the
    loop turn ("outbox"). Registering still goes through the hub."""
    from tcposcrouter.core.session import SessionState
    from tcposcrouter.osc.validate import validate_packet
    from tcposcrouter.server.tcp import TcpConnection

    registered = SessionState.REGISTERED

    def data_received(self: TcpConnection, data: bytes) -> None:
        session = self.session
        if session is None or session.state is not registered or session.user is None:
            receive(self, data)
            return
        receivers = session.user.receivers()
        if mode == "outbox":
            packets, at = [], 0
            while at + 4 <= len(data):
                size = int.from_bytes(data[at : at + 4], "big")
                packets.append(data[at + 4 : at + 4 + size])
                at += 4 + size
            router = self._router
            router.hub._outbox.deliver_run(receivers, packets)
            router.output_ready()
            return
        if mode == "decode":
            for packet in session.decoder.feed(data):
                validate_packet(packet)  # type: ignore[arg-type]
        for box in receivers:
            box.sink.write(data)

    return data_received


def ensemble(server: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        result = bench.flow(server, 1, 8, 8, 50, 100, SECONDS)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    sent = result.get("sent") or 1
    result["cpu_us_per_message"] = result["server_cpu_percent"] / 100 * SECONDS / sent * 1e6
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    bench.prepare()
    flags = bench.router_flags

    def served(port: int) -> list[str]:  # the stamped router, and its shells (env)
        return [sys.executable, str(Path(__file__)), "serve", *flags(port)]

    for server in ("stamped", *SHELL_MODES):
        bench.EXTRA_COMMANDS[server] = served
    out = bench.OUT
    runs: dict[str, list[dict[str, Any]]] = {server: [] for server in SERVERS}
    inside: list[dict[str, Any]] = []
    for rep in range(repeat):
        print(f"repetition {rep + 1} of {repeat}", flush=True)
        for server in runs:
            stamps = out / f"stamps-{rep}.json"
            env = {STAMPS_FILE: str(stamps)} if server == "stamped" else None
            if server in SHELL_MODES:
                env = {SHELL_ONLY: SHELL_MODES[server]}
            result = ensemble(server, env)
            runs[server].append(result)
            if server == "stamped":
                inside.append(json.loads(stamps.read_text()))
            print(f"  {server}: p50 {result['p50_us']} µs p99 {result['p99_us']} µs, "
                  f"CPU {result['cpu_us_per_message']:.0f} µs per message", flush=True)  # fmt: skip
    profile_text = out / "cprofile.txt"
    ensemble("stamped", {PROFILE_FILE: str(profile_text)})
    report = render(runs, inside, profile_text.read_text(), repeat)
    (bench.RESULTS / "latency-profile.md").write_text(report)
    print(report)
    return 0


def render(
    runs: dict[str, list[dict[str, Any]]], inside: list[dict[str, Any]], profile: str, repeat: int
) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    c50 = med([r["p50_us"] for r in runs["c_relay"]])
    c99 = med([r["p99_us"] for r in runs["c_relay"]])
    lines = [
        "# Where the ensemble's microseconds go",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; `benchmarks/latency_profile.py`: one group of 8, "
        f"8 senders x 50 messages/s of 100 bytes, {SECONDS} s; medians of {repeat} alternating "
        "runs (the ratios: of the medians).",
        "",
        "| server | p50 µs | p99 µs | p50 / C relay | p99 / C relay | CPU µs per message | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for server, label in SERVERS.items():
        p50 = med([r["p50_us"] for r in runs[server]])
        p99 = med([r["p99_us"] for r in runs[server]])
        cpu = med([r["cpu_us_per_message"] for r in runs[server]])
        lost = sum(r.get("lost", 0) + r.get("reordered", 0) for r in runs[server])
        lines.append(
            f"| {label} | {p50:,.0f} | {p99:,.0f} | {p50 / c50:.2f} | {p99 / c99:.2f} "
            f"| {cpu:,.0f} | {lost} |"
        )
    lines += [
        "",
        "Inside the stamped router, per message (due time to each point; medians of the "
        "runs' percentiles):",
        "",
        "| part | p50 µs | p99 µs |",
        "|---|---:|---:|",
    ]
    for part, what in (
        ("before", "due -> `data_received` starts (sender, kernel, wake-up, read)"),
        ("receive", "`data_received`: framing, validation, routing"),
        ("turn", "-> the flush at the end of the loop turn"),
        ("write", "the flush: the writes into the kernel"),
    ):
        p50 = med([run[part]["p50_us"] for run in inside])
        p99 = med([run[part]["p99_us"] for run in inside])
        lines.append(f"| {part}: {what} | {p50:,.1f} | {p99:,.1f} |")
    reads = med([run["reads_per_flush_mean"] for run in inside])
    messages = med([run["messages"] for run in inside])
    lines += [
        "",
        f"Messages stamped per run: {messages:,.0f}; reads per flush that carried one: "
        f"{reads:.2f} on average.",
        "",
        "cProfile of the same scenario, the router's functions by their own time (cProfile's "
        "overhead inflates every figure; the ranking is what counts):",
        "",
        "```",
        *_profile_rows(profile),
        "```",
        "",
    ]
    return "\n".join(lines)


def _profile_rows(profile: str) -> list[str]:
    rows = profile.splitlines()
    start = next((i for i, row in enumerate(rows) if row.strip().startswith("ncalls")), 0)
    return [row.rstrip() for row in rows[start:] if row.strip()]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
