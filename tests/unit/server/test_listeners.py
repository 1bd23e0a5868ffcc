"""The router's listening sockets (server/listeners.py): a storm of connections is accepted a few
a turn, every one of them in the end, on the OSC ports and on the HTTP port; a port that cannot
be opened says its address."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from tcposcrouter.limits import Limits
from tcposcrouter.server.app import RouterServer
from tcposcrouter.server.config import ServerConfig
from tcposcrouter.server.http.door import GuardedSite
from tcposcrouter.server.listeners import ACCEPTS_PER_TURN, HTTP_ACCEPTS_PER_TURN, bind


def test_a_storm_is_accepted_a_few_a_turn_and_all_of_it_in_the_end() -> None:
    limits = Limits(max_connections_per_address=0, max_connections=0)
    config = ServerConfig(
        hosts=["127.0.0.1"], osc10_port=0, osc11_port=None, http_port=None, limits=limits
    )
    router = RouterServer(config)

    async def storm() -> tuple[int, int]:
        await router.start()
        (listener,) = router._listeners
        port = listener.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        listener._accept()  # what one turn does when the port is readable
        first_turn = len(listener._opening)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(router.connections) == len(clients):
                break
        opened = len(router.connections)
        for client in clients:
            client.close()
        await router.stop()
        return first_turn, opened

    first_turn, opened = asyncio.run(storm())
    assert first_turn == ACCEPTS_PER_TURN
    assert opened == 40


def test_fifty_dashboards_opened_at_once_are_accepted_a_few_a_turn_and_all_answered() -> None:
    config = ServerConfig(
        hosts=["127.0.0.1"], osc10_port=0, osc11_port=None, http_port=0, limits=Limits()
    )
    router = RouterServer(config)

    def ask(port: int) -> list[socket.socket]:
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        return clients

    def answers(clients: list[socket.socket]) -> list[bytes]:
        got = []
        for client in clients:
            client.settimeout(10)
            got.append(client.recv(100))
            client.close()
        return got

    async def dashboards() -> tuple[int, list[bytes]]:
        await router.start()
        assert router._http is not None and router._http._runner is not None
        (site,) = router._http._runner.sites
        assert isinstance(site, GuardedSite)
        (listener,) = site._listeners
        clients = ask(site.sockets[0].getsockname()[1])  # the loop waits: all in the backlog
        listener._accept()  # what one turn does when the port is readable
        first_turn = len(listener._opening)
        got = await asyncio.to_thread(answers, clients)
        await router.stop()
        return first_turn, got

    first_turn, got = asyncio.run(dashboards())
    assert first_turn == HTTP_ACCEPTS_PER_TURN
    assert len(got) == 50
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in got)


def test_a_port_in_use_says_its_address_as_the_startup_error_reads_it() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        with pytest.raises(OSError) as info:
            bind("127.0.0.1", port, reuse_port=False)
        assert info.value.errno == errno.EADDRINUSE
        assert f"bind on address ('127.0.0.1', {port}): address already in use" in str(info.value)
    finally:
        taken.close()
