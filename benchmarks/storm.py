"""A connection storm while a group plays: how long 1,000 clients registering at once take to be
all in, and what the storm does to the music of a group already playing, for the original
0.2.0 and tcposcrouter (and with --baseline TREE another checkout) in one run.

    .venv/bin/python benchmarks/storm.py [--repeat 5] [--baseline TREE]   results/storm.md

Each run starts the server, starts benchmarks/loadgen.c's ensemble (1 group of 8, 8 senders x
50 msg/s of 100 B, 8 s), waits 3 s, then runs a second loadgen's storm (50 groups of 20 connect
and register at once) and reports the time until the last register reply, and the ensemble's
delivery latency over its whole 8 s (the storm is inside it): p99 and the largest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from run import LOADGEN, RESULTS, Server, more_open_files, prepare  # noqa: E402

ENSEMBLE_SECONDS, STORM_AFTER = 8.0, 3.0
STORM_GROUPS, STORM_USERS = 50, 20


def storm_with_music(server: str) -> dict[str, Any]:
    srv = Server.start(server)
    try:
        music = subprocess.Popen(
            [str(LOADGEN), "flow", "127.0.0.1", str(srv.port), "1", "8", "8", "50", "100",
             str(ENSEMBLE_SECONDS), "batched"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=more_open_files,
        )  # fmt: skip
        assert music.stdout is not None and music.stderr is not None
        music.stdout.readline()  # registered: the music starts now
        time.sleep(STORM_AFTER)
        storm = subprocess.run(
            [str(LOADGEN), "idle", "127.0.0.1", str(srv.port), str(STORM_GROUPS),
             str(STORM_USERS), "0.5"],
            capture_output=True, text=True, preexec_fn=more_open_files, timeout=180,
        )  # fmt: skip
        line = music.stdout.readline()
        music.wait(60)
        music.stdout.close()
        music.stderr.close()
    finally:
        srv.stop()
    result: dict[str, Any] = {"server": server}
    result["storm"] = json.loads(storm.stdout) if storm.stdout else {"error": storm.stderr}
    result["music"] = json.loads(line) if line else {"error": "the ensemble did not finish"}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, metavar="TREE")
    args = parser.parse_args()
    servers = ["original", "tcposcrouter"]
    if args.baseline is not None:
        run.BASELINE_SOURCE = (args.baseline / "src").resolve()
        servers.append("baseline")
    prepare()
    runs: dict[str, list[dict[str, Any]]] = {server: [] for server in servers}
    for repetition in range(args.repeat):
        for server in servers:
            result = storm_with_music(server)
            runs[server].append(result)
            print(f"{repetition + 1} {server:13} storm {result['storm']} music "
                  f"p99 {result['music'].get('p99_us')} max {result['music'].get('max_us')} "
                  f"lost {result['music'].get('lost')}", flush=True)  # fmt: skip

    def figures(server: str, pick: Any) -> str:
        values = [pick(r) for r in runs[server]]
        return f"{statistics.median(values):,.3f} ({min(values):,.3f}-{max(values):,.3f})"

    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# Connection storm with music playing ({when})",
        "",
        f"{STORM_GROUPS} groups x {STORM_USERS} connect and register at once, {STORM_AFTER:.0f} s "
        f"into an ensemble (1 group x 8, 8 senders x 50/s, {ENSEMBLE_SECONDS:.0f} s) on the same "
        f"server; median (min-max) of {args.repeat} runs.",
        "",
        "| | " + " | ".join(servers) + " |",
        "|---|" + "---|" * len(servers),
        "| all 1,000 registered, s | "
        + " | ".join(figures(s, lambda r: r["storm"]["all_registered_s"]) for s in servers)
        + " |",
        "| the ensemble's p99 over its 8 s, ms | "
        + " | ".join(figures(s, lambda r: r["music"]["p99_us"] / 1000) for s in servers)
        + " |",
        "| the ensemble's largest delay, ms | "
        + " | ".join(figures(s, lambda r: r["music"]["max_us"] / 1000) for s in servers)
        + " |",
        "| the ensemble's lost + reordered, worst run | "
        + " | ".join(
            str(max(r["music"]["lost"] + r["music"]["reordered"] for r in runs[s])) for s in servers
        )
        + " |",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "storm.json").write_text(json.dumps(runs, indent=2) + "\n")
    (RESULTS / "storm.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
