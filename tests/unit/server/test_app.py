"""The running router's own rhythm (server/app.py): deferred work takes a bounded share of a
turn, and what lives as long as the process is kept out of the garbage collector's way."""

from __future__ import annotations

import asyncio
import functools
import gc
import time

from tcposcrouter.server.app import TURN_SECONDS, RouterServer
from tcposcrouter.server.config import ServerConfig


def test_deferred_work_takes_about_a_millisecond_a_turn_and_all_of_it_gets_done() -> None:
    router = RouterServer(
        ServerConfig(hosts=["127.0.0.1"], osc10_port=0, osc11_port=None, http_port=None)
    )
    done: list[int] = []

    def work(number: int) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < 0.0002:  # 0.2 ms of work
            pass
        done.append(number)

    async def run() -> tuple[int, int]:
        await router.start()
        for number in range(50):
            router.defer(functools.partial(work, number))
        await asyncio.sleep(0)  # one turn
        first_turn = len(done)
        for _ in range(100):
            await asyncio.sleep(0)
        await router.stop()
        return first_turn, len(done)

    first_turn, total = asyncio.run(run())
    assert 1 <= first_turn <= TURN_SECONDS / 0.0002 + 1
    assert total == 50 and done == sorted(done)  # all of it, in order


def test_what_was_made_at_start_is_frozen_out_of_the_collectors_way() -> None:
    router = RouterServer(
        ServerConfig(hosts=["127.0.0.1"], osc10_port=0, osc11_port=None, http_port=None)
    )

    async def run() -> int:
        await router.start()
        frozen = gc.get_freeze_count()
        await router.stop()
        return frozen

    try:
        assert asyncio.run(run()) > 1000
    finally:
        gc.unfreeze()
