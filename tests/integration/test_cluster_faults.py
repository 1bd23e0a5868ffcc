"""The cluster when it is set up wrong (docs/cluster.md): a wrong Redis password, a server that
is not Redis, two nodes under one --node-id end the router at start with a clear message and
exit status 78 (EX_CONFIG); a Redis that is only not up yet does not.

Drives cluster/startup.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.process import free_port, wait_until_listening
from support.redis import RedisServer
from tcposcrouter.errors import EX_CONFIG


def router_command(cluster: str, *extra: str) -> tuple[list[str], int]:
    http = free_port()
    return [
        sys.executable, "-m", "tcposcrouter", "--host", "127.0.0.1", "--osc-port", str(free_port()),
        "--no-osc11", "--http-port", str(http), "--admin-token", "t", "--cluster", cluster, *extra,
    ], http  # fmt: skip


def refused(cluster: str, *extra: str) -> str:
    """Run a router that must refuse to start; return what it said."""
    command, _ = router_command(cluster, *extra)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == EX_CONFIG, done.stderr
    return done.stdout + done.stderr


def test_a_wrong_redis_password_ends_the_router_at_start(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", password="right-one")
    try:
        said = refused(f"redis://:guess-7@127.0.0.1:{redis.port}/0")
        assert "cannot join the cluster" in said and "refused the password" in said
        assert "guess-7" not in said and "redis://:***@127.0.0.1" in said
        said = refused(f"redis://127.0.0.1:{redis.port}/0")  # no password at all
        assert "refused the password" in said
        # --workers' supervisor does not start such workers again and again: it stops too.
        said = refused(f"redis://:guess-7@127.0.0.1:{redis.port}/0", "--workers", "2")
        assert "cannot run as configured" in said
    finally:
        redis.stop()


@pytest.fixture
def http_server() -> Iterator[int]:
    """Something that is not Redis on a port: it answers every connection as a web server."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(4096)
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve)
    thread.start()
    yield port
    done.set()
    thread.join()
    listener.close()


def test_a_server_that_is_not_redis_ends_the_router_at_start(http_server: int) -> None:
    said = refused(f"redis://127.0.0.1:{http_server}/0")
    assert "is not a Redis server" in said


def test_a_redis_that_is_not_up_yet_starts_the_router_degraded(tmp_path: Path) -> None:
    command, http = router_command(f"redis://127.0.0.1:{free_port()}/0")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_listening(process, [http], timeout=20)
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=5) as response:
            assert response.read().decode().startswith("degraded")
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and b"cluster degraded" in out


def test_two_nodes_with_one_node_id_cannot_both_run(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    command, http = router_command(redis.url, "--node-id", "stage-left")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(first, [http], timeout=20)
        said = refused(redis.url, "--node-id", "stage-left")
        assert "another node is running as 'stage-left'" in said
        # Once the first is gone for good, its name is free again (a replaced worker).
        first.kill()
        first.wait(10)
        started = time.monotonic()
        command, http = router_command(redis.url, "--node-id", "stage-left")
        second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(second, [http], timeout=30)
            assert time.monotonic() - started < 15
        finally:
            second.terminate()
            assert second.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        redis.stop()
