"""`tcposcrouter --workers N`: N router processes on one machine, sharing the listening ports
(SO_REUSEPORT: the kernel spreads new connections over them), so that a router uses every core;
with or without a cluster's Redis. Each group lives in one worker: a connection is handed (or
relayed) to the worker that owns its group through Unix sockets in a folder this process makes
(server/handoff.py, server/relay.py). This process only supervises: it starts them, starts
again one that dies (in the same place, so its groups come back to it), passes SIGHUP on (a
reload in every worker), and on SIGTERM or SIGINT stops them all and waits for their
goodbyes."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

from ..errors import EX_CONFIG
from ..server.handoff import WORKER_DIR_ENV, WORKER_ENV

__all__ = ["supervise", "worker_arguments"]

log = logging.getLogger("tcposcrouter.workers")

# A worker that dies is started again after this long, doubling (to at most a minute) while
# they keep dying within RESTART_WINDOW of their start: a broken configuration does not spin.
RESTART_FIRST, RESTART_MAX, RESTART_WINDOW = 1.0, 60.0, 10.0
# Workers get this long to say goodbye to their clients on SIGTERM before they are killed.
STOP_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1  # prctl(2)


def worker_arguments(argv: Sequence[str], node: str) -> list[str]:
    """The command line of one worker: the supervisor's without --workers and --node-id, with
    the worker's own name and --reuse-port."""
    kept: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
            continue
        if argument in ("--workers", "--node-id"):
            skip = True
            continue
        if argument.startswith(("--workers=", "--node-id=")) or argument == "--reuse-port":
            continue
        kept.append(argument)
    return [*kept, "--node-id", node, "--reuse-port"]


class _Worker:
    def __init__(self, argv: Sequence[str], node: str, place: dict[str, str]) -> None:
        self.node = node
        self.arguments = worker_arguments(argv, node)
        self.environment = {**os.environ, **place}
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.delay = RESTART_FIRST
        self.due = 0.0  # when to start it again

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tcposcrouter", *self.arguments],
            env=self.environment,
            preexec_fn=_end_with_supervisor,  # safe: the supervisor runs no threads
        )
        self.started = time.monotonic()


def _end_with_supervisor() -> None:
    """In a worker, before it runs: the kernel sends it SIGTERM when its supervisor dies
    (killed with -9, or by the OOM killer), so that no worker is left holding the ports that a
    router started again needs."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(
    argv: Sequence[str], count: int, node_id: str | None, place: dict[str, str] | None = None
) -> int:
    """Run `count` workers of the command line `argv`; `place`: more of their environment."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    base = node_id or f"{os.uname().nodename}-{os.getpid()}"
    # The workers' Unix sockets, for handing connections to a group's owner: this user's only.
    folder = tempfile.mkdtemp(
        prefix="tcposcrouter-workers-", dir=os.environ.get("XDG_RUNTIME_DIR") or None
    )
    workers = [
        _Worker(
            argv,
            f"{base}-{index}",
            {**(place or {}), WORKER_ENV: f"{index}/{count}", WORKER_DIR_ENV: folder},
        )
        for index in range(1, count + 1)
    ]
    try:
        return _supervise(workers, count)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(workers: list[_Worker], count: int) -> int:
    stopping = False
    failed = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def reload(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for worker in workers:
        worker.start()
    log.info("supervising %d workers: %s", count, ", ".join(w.node for w in workers))
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for worker in workers:
            process = worker.process
            if process is not None and process.returncode is None and process.poll() == EX_CONFIG:
                # Misconfigured (the worker said why): starting it again cannot help.
                log.error("worker %s cannot run as configured; stopping", worker.node)
                stopping = True
                failed = EX_CONFIG
                break
            if process is not None and process.poll() is not None:
                quick = now - worker.started < RESTART_WINDOW
                worker.delay = min(RESTART_MAX, worker.delay * 2) if quick else RESTART_FIRST
                worker.due = now + worker.delay
                log.warning(
                    "worker %s exited with %s; starting it again in %.0f s",
                    worker.node,
                    process.returncode,
                    worker.delay,
                )
                worker.process = None
            elif process is None and now >= worker.due and not stopping:
                worker.start()
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for worker in workers:
        if worker.process is None:
            continue
        try:
            worker.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop in time; killing it", worker.node)
            worker.process.kill()
            worker.process.wait()
    log.info("all workers stopped")
    return failed
