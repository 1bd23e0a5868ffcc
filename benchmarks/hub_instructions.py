"""Instructions per delivery of the hub's hot path, counted by valgrind's callgrind, and the
Python bytecodes it executes: the same counts for the same code and input whatever else the
machine is doing, so two source trees can be compared where timing on a shared virtual machine
cannot tell a few percent apart.

    .venv/bin/python benchmarks/hub_instructions.py src /path/to/other/checkout/src

For each tree, a hub in-process with one group of 16 members, 4 of them sending reads of 10
messages (batched) or of 1 (one message per read) to sinks that drop the bytes. Each count is
taken at two lengths of run and subtracted, so start-up and registering cancel out.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

MEMBERS, SENDERS = 16, 4
SHORT, LONG = 50, 250  # rounds: every sender sends one read per round


def drive(rounds: int, per_read: int, count_bytecodes: bool = False) -> None:
    """Run in the child process, with the tree to measure first on sys.path. With
    `count_bytecodes`, one more round is traced and its bytecodes are printed."""
    from tcposcrouter.core import hub as hub_module
    from tcposcrouter.limits import Limits
    from tcposcrouter.osc.messages import build_message, register_message

    class Sink:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

        def reset(self) -> None:
            pass

        abort = reset  # the name in trees before "reset"

    def frame(packet: bytes) -> bytes:
        return struct.pack(">i", len(packet)) + packet

    limits = Limits(rate_limit_packets=0, rate_limit_bytes=0, max_connections_per_address=0)
    if hasattr(hub_module, "HubConfig"):  # trees before the hub took the router's configuration
        hub = hub_module.Hub(hub_module.HubConfig(limits=limits))
    else:
        from tcposcrouter.server.config import ServerConfig

        hub = hub_module.Hub(ServerConfig(limits=limits))
    now = 1.0
    sessions = []
    for i in range(MEMBERS):
        session = hub.open(f"127.0.0.1:{1000 + i}", "127.0.0.1", now, Sink())
        hub.receive(session, frame(register_message(f"u{i}", "pw", "band", "gpw", i)), now)
        sessions.append(session)
    while checks := _take(hub):  # each register is checked again once the group exists
        for check in checks:
            check.run()
            _finished(hub, check, now)
    hub.flush()
    message = build_message("/note", ("i", 60), ("f", 0.5), ("s", "x" * 60))
    read = frame(message) * per_read
    for _ in range(rounds):
        for session in sessions[:SENDERS]:
            hub.receive(session, read, now)
        hub.flush()
    if count_bytecodes:
        executed = 0

        def trace(frame: types.FrameType, event: str, arg: Any) -> Any:
            nonlocal executed
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            executed += event == "opcode"
            return trace

        sys.settrace(trace)
        for session in sessions[:SENDERS]:
            hub.receive(session, read, now)
        hub.flush()
        sys.settrace(None)
        print(executed)


def _take(hub: Any) -> list[Any]:
    # The names of other trees: `hub.registers` now, `hub.checks` before the register was one
    # module, the hub itself before it became a facade.
    for part in ("registers", "checks"):
        if hasattr(hub, part):
            return list(getattr(hub, part).take())
    return list(hub.take_password_checks())


def _finished(hub: Any, check: Any, now: float) -> None:
    if hasattr(hub, "checked"):
        hub.checked(check, now)
    elif hasattr(hub, "checks"):
        hub.checks.finished(check, now)
    else:
        hub.password_checked(check, now)


def instructions(tree: Path, rounds: int, per_read: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
            sys.executable, __file__, "--drive", str(tree), str(rounds), str(per_read),
        ]  # fmt: skip
        # A fixed hash seed: string hashing is otherwise randomised per process, and so would
        # be a few instructions of every dict lookup.
        environment = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    (count,) = re.findall(r"Collected : (\d+)", done.stderr)
    return int(count)


def main(argv: list[str]) -> int:
    if argv[:1] in (["--drive"], ["--bytecodes"]):
        sys.path.insert(0, argv[1])
        drive(int(argv[2]), int(argv[3]), count_bytecodes=argv[0] == "--bytecodes")
        return 0
    for per_read in (10, 1):
        deliveries = (LONG - SHORT) * SENDERS * per_read * (MEMBERS - 1)
        for tree in map(Path, argv):
            extra = instructions(tree, LONG, per_read) - instructions(tree, SHORT, per_read)
            command = [sys.executable, __file__, "--bytecodes", str(tree), "1", str(per_read)]
            traced = subprocess.run(command, capture_output=True, text=True, check=True)
            print(
                f"{tree}: {per_read} message(s) per read: {extra / deliveries:,.0f} "
                f"instructions per delivery; {int(traced.stdout)} bytecodes per round of "
                f"{SENDERS} reads"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
