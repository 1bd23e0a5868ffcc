"""The checks that need scrypt (server/passwords.py): run in worker threads below the event
loop's priority, then handed back to the hub, which finishes the register."""

from __future__ import annotations

import asyncio
import os
import threading

from support.net import RecordingSink
from support.osc import register
from tcposcrouter.core.auth import PasswordHash
from tcposcrouter.core.pinned import GroupRules, PinnedGroup
from tcposcrouter.core.session import SessionState
from tcposcrouter.osc.framing import Framing, frame
from tcposcrouter.server.app import RouterServer
from tcposcrouter.server.config import ServerConfig
from tcposcrouter.server.passwords import PASSWORD_NICENESS


def from_file(password: str) -> PasswordHash:
    """A hash as the configuration file gives it: nothing remembered, so checking it takes
    scrypt."""
    return PasswordHash.parse(PasswordHash(password).encode())


def test_a_register_that_needs_scrypt_is_checked_in_a_thread_and_finished_by_the_hub() -> None:
    rules = GroupRules((PinnedGroup("stage", from_file("stagepw")),))
    router = RouterServer(ServerConfig(group_rules=rules))

    async def scenario() -> SessionState:
        session = router.hub.open("192.0.2.1:1", "192.0.2.1", router.now(), RecordingSink())
        message = register("ana", "stage", group_password="stagepw")
        router.hub.receive(session, frame(message, Framing.LENGTH_PREFIX), router.now())
        assert session.state is SessionState.REGISTERING  # waiting for the thread
        router.passwords.ready()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if session.state is not SessionState.REGISTERING:
                break
        return session.state

    try:
        assert asyncio.run(scenario()) is SessionState.REGISTERED
    finally:
        router.passwords.shutdown()


def test_the_worker_threads_run_below_the_event_loop() -> None:
    router = RouterServer(ServerConfig())

    async def niceness() -> int:
        loop = asyncio.get_running_loop()
        ask = lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # noqa: E731
        return await loop.run_in_executor(router.passwords._pool, ask)

    async def answers() -> tuple[bool, bool]:
        hashed = from_file("right")
        return await router.passwords.check(hashed, "wrong"), await router.passwords.check(
            hashed, "right"
        )

    try:
        assert asyncio.run(niceness()) == os.getpriority(os.PRIO_PROCESS, 0) + PASSWORD_NICENESS
        assert asyncio.run(answers()) == (False, True)
    finally:
        router.passwords.shutdown()
