"""A real Ableton Link peer (aalink) for the Link bridge tests: it joins its network's Link
session with a quantum of 4 and prints, every 10 ms, `wall beat tempo playing peers`, wall
being time.time() read around the beat. Given `--set-tempo BPM --after S`, it changes the
session's tempo after S seconds, as a musician in Live would."""

from __future__ import annotations

import argparse
import asyncio
import time

from aalink import Link


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--set-tempo", type=float)
    parser.add_argument("--after", type=float, default=0.0)
    args = parser.parse_args()
    link = Link(100.0)
    link.quantum = 4
    link.enabled = True
    link.start_stop_sync_enabled = True
    start = time.time()
    changed = False
    while time.time() - start < args.seconds:
        before = time.time()
        beat = link.beat
        after = time.time()
        wall = (before + after) / 2
        print(
            f"{wall:.6f} {beat:.6f} {link.tempo:.4f} {int(link.playing)} {link.num_peers}",
            flush=True,
        )
        if args.set_tempo and not changed and wall - start >= args.after:
            link.tempo = args.set_tempo
            changed = True
        await asyncio.sleep(0.01)


asyncio.run(main())
