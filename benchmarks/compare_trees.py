"""What a change that should not change behaviour must keep: the router of one checkout against
another's, alternated in one run, on the two figures that move first: the capacity with one
message per write (a sender's every message its own send, as sclang and Pd send them) and the
ensemble's p50/p99 (a group of 8, all sending 50/s), with the C relay beside them as the floor.

    git worktree add /tmp/before <commit>; git worktree add /tmp/after HEAD
    .venv/bin/python benchmarks/compare_trees.py /tmp/before /tmp/after [--repeat 3]

Each router runs from its checkout's src/ (so editing this one meanwhile changes nothing).
Takes about 3 minutes a repetition. Prints each run and the medians; uses benchmarks/run.py's
load generator and servers.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

import run

SERVERS = ("before", "after", "c_relay")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout (its src/ is run)")
    parser.add_argument("after", type=Path, help="another checkout")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ensemble-only", action="store_true", help="skip the capacity sweeps")
    args = parser.parse_args(argv)
    for name, checkout in (("before", args.before), ("after", args.after)):
        source = (checkout / "src").resolve()
        run.EXTRA_COMMANDS[name] = functools.partial(run.router_command, source=source)
    run.prepare()
    capacity: dict[str, list[float]] = {s: [] for s in SERVERS}
    p50: dict[str, list[float]] = {s: [] for s in SERVERS}
    p99: dict[str, list[float]] = {s: [] for s in SERVERS}
    for rep in range(args.repeat):
        print(f"repetition {rep + 1} of {args.repeat}", flush=True)
        order = SERVERS if rep % 2 == 0 else tuple(reversed(SERVERS))
        for server in () if args.ensemble_only else order:
            sweep = run.capacity_sweep(server, 3.0, False, "each")
            good = [r["delivered_per_s"] for r in sweep if run.passed(r)]
            capacity[server].append(max(good) if good else 0.0)
        for server in order:
            ensemble = run.flow(server, 1, 8, 8, 50, 100, 10)
            print(f"    ensemble {server:13} {run.summary(ensemble)}", flush=True)
            p50[server].append(float(ensemble["p50_us"]))
            p99[server].append(float(ensemble["p99_us"]))
    print(f"\nmedians of {args.repeat} (before: {args.before}, after: {args.after}):")
    for server in SERVERS:
        if capacity[server]:
            print(
                f"  {server:13} capacity, one message per write: "
                f"{statistics.median(capacity[server]):>12,.0f} deliveries/s "
                f"(runs {', '.join(f'{c:,.0f}' for c in capacity[server])})"
            )
        print(
            f"  {server:13} ensemble p50 {statistics.median(p50[server]):.0f} us "
            f"(runs {', '.join(f'{v:.0f}' for v in p50[server])}), "
            f"p99 {statistics.median(p99[server]):.0f} us "
            f"(runs {', '.join(f'{v:.0f}' for v in p99[server])})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
