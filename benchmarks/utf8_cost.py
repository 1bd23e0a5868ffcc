"""What checking strings for UTF-8 costs the validator, per packet.

    python benchmarks/utf8_cost.py [REV]

Times `validate_packet` on typical packets with this tree's validator and with the one of git
revision REV (default 481c8d5, the last without the check), in the same process, and writes
benchmarks/results/utf8-cost.md. The router validates every packet once, whatever the number of
receivers, so this is the whole cost of the check.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from support.osc import IMMEDIATELY, bundle, msg, raw_message  # noqa: E402
from tcposcrouter.osc.validate import validate_packet  # noqa: E402

PACKETS = {
    "/note ,iff (no strings)": msg("/note", 60, 0.5, 0.25),
    "/chat ,s ASCII, 40 chars": msg("/chat", "x" * 40),
    "/chat ,s multi-byte, 40 chars": msg("/chat", "äöü音楽🎹" * 5),
    "/code ,s ASCII, 4 KB": msg("/code", "y" * 4000),
    "bundle of 4 ,sf": bundle(IMMEDIATELY, *(msg("/n", "kick", 1.0) for _ in range(4))),
    "/sym ,S ASCII": raw_message("/sym", ",S", b"sine\x00\x00\x00\x00"),
}


def load_baseline(rev: str) -> Callable[[bytes], bool]:
    source = subprocess.run(
        ["git", "show", f"{rev}:src/tcposcrouter/osc/validate.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp())
    path = folder / "validate_baseline.py"
    # The old module imports its siblings relatively; make it a module of the package.
    path.write_text(
        source.replace("from ..", "from tcposcrouter.").replace("from .", "from tcposcrouter.osc.")
    )
    spec = importlib.util.spec_from_file_location("validate_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.validate_packet  # type: ignore[no-any-return]


def ns_per_packet(validate: Callable[[bytes], bool], packet: bytes) -> float:
    rounds = []
    for _ in range(7):
        count = 20_000
        start = time.perf_counter_ns()
        for _ in range(count):
            validate(packet)
        rounds.append((time.perf_counter_ns() - start) / count)
    return statistics.median(rounds)


def main() -> int:
    rev = sys.argv[1] if len(sys.argv) > 1 else "481c8d5"
    baseline = load_baseline(rev)
    lines = [
        "# The cost of the UTF-8 check",
        "",
        f"`benchmarks/utf8_cost.py`: `validate_packet`, median of 7 x 20,000 calls, against {rev}.",
        "",
        "| packet | without the check, ns | with it, ns | difference |",
        "|---|---|---|---|",
    ]
    for name, packet in PACKETS.items():
        before, after = ns_per_packet(baseline, packet), ns_per_packet(validate_packet, packet)
        lines.append(
            f"| {name} | {before:,.0f} | {after:,.0f} | {after - before:+,.0f} ns "
            f"({(after / before - 1) * 100:+.0f} %) |"
        )
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks" / "results" / "utf8-cost.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
