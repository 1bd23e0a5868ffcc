"""A real redis-server (Debian's) of a test's own on a free loopback port, started, stopped and
started again on the same port (a Redis restart), with nothing saved to disk."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from support.peers import require_program
from support.process import free_port

__all__ = ["RedisServer"]


class RedisServer:
    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.binary = require_program("redis-server")
        self.password = password
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16)[:1] in (b"+", b"-"):  # PONG, or NOAUTH: it answers
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash would: nothing is kept
            self.process.wait(10)
        self.process = None
