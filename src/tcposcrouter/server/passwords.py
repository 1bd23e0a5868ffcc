"""Password checks that need scrypt, off the event loop: the hub's waiting checks (those its
keyed hashes could not answer at once: pinned groups, and every one on a node of a cluster) are
handed to a small pool of worker threads in batches, or through the cluster node's store when
there is one, and each finished check goes back to its connection. scrypt releases the GIL, so
a storm of registers is hashed on every core while the event loop goes on routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..core.auth import PasswordHash
from ..core.register import PasswordCheck
from .running import ClusterEdge, RunningRouter

__all__ = ["CHECK_BATCH", "PASSWORD_THREADS", "PasswordWorkers"]

log = logging.getLogger("tcposcrouter.server")

# Threads that check passwords: one per core (the event loop mostly waits on the network), and
# at most four, beyond which a storm of registers is no faster but the router holds more
# threads than it needs.
PASSWORD_THREADS = max(1, min(4, os.cpu_count() or 1))
# Registers checked per job: completing one costs the event loop about 0.1 ms (replies, user
# lists, log lines), so a batch of 16 keeps every turn of the loop short in a storm.
CHECK_BATCH = 16
# How much lower than the event loop they run (nice). On Linux a thread has a niceness of its own.
PASSWORD_NICENESS = 10


class PasswordWorkers:
    def __init__(self, router: RunningRouter) -> None:
        self._router = router
        self._pool = ThreadPoolExecutor(
            PASSWORD_THREADS, thread_name_prefix="passwords", initializer=_behind_the_music
        )
        self._scheduled = False
        self._cluster_jobs: set[asyncio.Task[None]] = set()
        self.failures = 0  # bugs in a check (each closed its connection)

    def ready(self) -> None:
        """Schedule the hub's waiting password checks to start at the end of this loop turn."""
        if not self._scheduled and self._router.hub.registers.waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        """Hand the turn's password checks to the worker threads in batches of at most
        `CHECK_BATCH`: a storm of registers costs a hand-over per batch, not per register, and
        the registers a finished batch completes fit in one short turn of the event loop."""
        self._scheduled = False
        checks = self._router.hub.registers.take()
        loop = asyncio.get_running_loop()
        batches = [checks[i : i + CHECK_BATCH] for i in range(0, len(checks), CHECK_BATCH)]
        cluster = self._router.cluster
        for batch in batches:
            if cluster is not None:  # through the cluster's store, see cluster/node.py
                job = loop.create_task(self._through_cluster(cluster, batch))
                self._cluster_jobs.add(job)
                job.add_done_callback(self._cluster_jobs.discard)
            else:
                future = loop.run_in_executor(self._pool, _run_all, batch)
                future.add_done_callback(functools.partial(self._checked, batch))

    async def _through_cluster(self, cluster: ClusterEdge, batch: list[PasswordCheck]) -> None:
        router = self._router
        try:
            await cluster.finish_checks(batch, self.run)
        except Exception:  # a bug: those connections go, nobody else
            self.failures += 1
            log.exception("cluster password checks failed")
            for check in batch:
                self._reset(check)
        router.output_ready()
        self.ready()

    async def run(self, batch: list[PasswordCheck]) -> None:
        """Run `batch` in the worker threads (the cluster node's `RunChecks`)."""
        await asyncio.get_running_loop().run_in_executor(self._pool, _run_all, batch)

    def _checked(self, batch: list[PasswordCheck], done: asyncio.Future[None]) -> None:
        if done.cancelled():
            return
        error = done.exception()
        router = self._router
        for check in batch:
            connection = router.connections.of(check.session.id)
            if connection is None:
                if error is None:  # gone while its check ran: the outcome still counts
                    router.hub.checked(check, router.now())
                continue
            if error is not None:  # a bug in a check: those connections go, nobody else
                self.failures += 1
                log.error("password check of %s failed: %r", check.session.describe(), error)
                connection.reset()
            else:
                connection.password_checked(check)

    def _reset(self, check: PasswordCheck) -> None:
        connection = self._router.connections.of(check.session.id)
        if connection is not None:
            connection.reset()

    async def check(self, expected: PasswordHash, password: str) -> bool:
        """Whether `password` matches `expected`: at once if no scrypt is needed, else in a
        worker thread."""
        quickly = expected.matches_quickly(password)
        if quickly is not None:
            return quickly
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, expected.matches, password)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _behind_the_music() -> None:
    """Run this worker thread at a lower priority than the event loop: in a storm of registers
    the kernel then gives the routing its CPU first, and the hashing takes what is left."""
    with contextlib.suppress(AttributeError, OSError):  # not everywhere; the checks still run
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_NICENESS)


def _run_all(checks: list[PasswordCheck]) -> None:
    for check in checks:
        check.run()
