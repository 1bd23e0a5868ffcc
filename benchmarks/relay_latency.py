"""What relaying costs a member with `--workers 2` (server/relay.py): the delay from a sender to
a TLS listener that landed on the group's own worker, against one that landed on the other
worker and is relayed, measured in one run.

    .venv/bin/python benchmarks/relay_latency.py        results/relay.md (about a minute)

The router runs with `--workers 2` and a TLS port. TLS listeners connect until one was
relayed (the other worker's log says so) and one was not; a plain TCP sender then plays 200
messages/s of 100 bytes for 10 s, each stamped with its send time; the listeners live in this
process, so sends and arrivals are timed on one clock. Three runs.
"""

from __future__ import annotations

import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from support.client import Client  # noqa: E402
from support.process import free_port, wait_until_listening  # noqa: E402
from support.tls import make_certificate, tls_socket  # noqa: E402
from tcposcrouter.osc.messages import build_message  # noqa: E402
from tcposcrouter.server.handoff import owner_of  # noqa: E402

RESULTS = HERE / "results"
RATE, SECONDS, RUNS = 200, 10.0, 3
GROUP = "relay-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def listen(client: Client, count: int, delays: list[float]) -> None:
    while len(delays) < count:
        packet = client.recv(10)
        if packet.address == "/lat":
            (stamp,) = struct.unpack_from(">d", packet.raw, 12)  # "/lat", ",ds", then the time
            delays.append((time.perf_counter() - stamp) * 1e6)


def one_run(folder: Path) -> dict[str, dict[str, float]]:
    cert, key = make_certificate(folder / "cert")
    osc, tls, logs = free_port(), free_port(), folder / "logs"
    router = subprocess.Popen(
        [sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(osc),
         "--disable-osc11", "--no-http", "--tls-cert", str(cert), "--tls-key", str(key),
         "--tls-osc-port", str(tls), "--no-tls-osc11", "--workers", "2", "--node-id", "r",
         "--log-dir", str(logs), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_listening(router, [osc, tls])
        time.sleep(1.0)
        other = 3 - owner_of(GROUP, 2)
        log = logs / f"tcposcrouter-r-{other}.log"
        listeners: dict[str, Client] = {}
        for index in range(40):
            before = log.read_text().count("relayed to") if log.exists() else 0
            client = Client(tls, sock=tls_socket(tls, cert)).join(f"l{index}", GROUP)
            relayed = log.exists() and log.read_text().count("relayed to") > before
            kind = "relayed" if relayed else "direct"
            if kind in listeners:
                client.close()
            else:
                listeners[kind] = client
            if len(listeners) == 2:
                break
        sender = Client(osc).join("sender", GROUP)
        for client in listeners.values():
            client.drain(0.3)
        count = int(RATE * SECONDS)
        delays: dict[str, list[float]] = {kind: [] for kind in listeners}
        threads = [
            threading.Thread(target=listen, args=(listeners[kind], count, delays[kind]))
            for kind in listeners
        ]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        for number in range(count):
            pause = start + number / RATE - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sender.send(build_message("/lat", ("d", time.perf_counter()), ("s", "x" * 60)))
        for thread in threads:
            thread.join(30)
        return {
            kind: {"p50_us": percentile(v, 0.5), "p99_us": percentile(v, 0.99), "count": len(v)}
            for kind, v in delays.items()
        }
    finally:
        router.terminate()
        router.wait(30)


def main() -> int:
    runs = []
    for index in range(RUNS):
        with tempfile.TemporaryDirectory() as folder:
            run = one_run(Path(folder))
        runs.append(run)
        print(f"run {index + 1}: {run}", flush=True)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def med(kind: str, field: str) -> str:
        values = [run[kind][field] for run in runs]
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    lines = [
        f"# A relayed member's delay with --workers 2 ({when})",
        "",
        f"A plain TCP sender, {RATE} msg/s of 100 B for {SECONDS:.0f} s; two TLS listeners in one "
        f"group, one on the group's worker, one relayed by the other; median (min-max) of {RUNS} "
        "runs, µs, the load process's own Python included in both alike.",
        "",
        "| TLS listener | p50 | p99 |",
        "|---|---:|---:|",
        f"| on the group's worker | {med('direct', 'p50_us')} | {med('direct', 'p99_us')} |",
        f"| relayed by the other worker | {med('relayed', 'p50_us')} "
        f"| {med('relayed', 'p99_us')} |",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "relay.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
