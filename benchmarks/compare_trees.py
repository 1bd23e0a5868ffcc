"""What a change that should not change behaviour must keep: this tree's router against another
tree's, alternated in one run, on the two figures that move first: the capacity with one message
per write (a sender's every message its own send, as sclang and Pd send them) and the ensemble's
p50/p99 (a group of 8, all sending 50/s), with the C relay beside them as the floor.

    .venv/bin/python benchmarks/compare_trees.py /path/to/other/checkout [--repeat 3]

Takes about 3 minutes a repetition. Prints each run and the medians; uses benchmarks/run.py's
load generator and servers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import run

SERVERS = ("baseline", "tcposcrouter", "c_relay")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (its src/ is used)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    run.BASELINE_SOURCE = (args.other / "src").resolve()
    run.prepare()
    capacity: dict[str, list[float]] = {s: [] for s in SERVERS}
    p50: dict[str, list[float]] = {s: [] for s in SERVERS}
    p99: dict[str, list[float]] = {s: [] for s in SERVERS}
    for rep in range(args.repeat):
        print(f"repetition {rep + 1} of {args.repeat}", flush=True)
        order = SERVERS if rep % 2 == 0 else tuple(reversed(SERVERS))
        for server in order:
            sweep = run.capacity_sweep(server, 3.0, False, "each")
            good = [r["delivered_per_s"] for r in sweep if run.passed(r)]
            capacity[server].append(max(good) if good else 0.0)
        for server in order:
            ensemble = run.flow(server, 1, 8, 8, 50, 100, 10)
            print(f"    ensemble {server:13} {run.summary(ensemble)}", flush=True)
            p50[server].append(float(ensemble["p50_us"]))
            p99[server].append(float(ensemble["p99_us"]))
    print(f"\nmedians of {args.repeat} ({args.other} is 'baseline'):")
    for server in SERVERS:
        print(
            f"  {server:13} capacity, one message per write: "
            f"{statistics.median(capacity[server]):>12,.0f} deliveries/s "
            f"(runs {', '.join(f'{c:,.0f}' for c in capacity[server])}); ensemble p50 "
            f"{statistics.median(p50[server]):.0f} us, p99 {statistics.median(p99[server]):.0f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
