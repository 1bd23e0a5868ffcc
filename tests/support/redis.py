"""A real redis-server (Debian's) of a test's own on a free loopback port, started, stopped and
started again on the same port (a Redis restart), with nothing saved to disk."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from support.netns import Lab
from support.peers import require_program
from support.process import free_port

__all__ = ["RedisServer"]


class RedisServer:
    def __init__(self, folder: Path, password: str | None = None, lab: Lab | None = None) -> None:
        """`lab`: run in that namespace, on 127.0.0.1 and 127.0.0.2 (`url_via` names the
        second, which `Lab.cut` can cut for one node)."""
        self.binary = require_program("redis-server")
        self.password = password
        self.lab = lab
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port(lab)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_via(self, address: str) -> str:
        return f"redis://{address}:{self.port}/0"

    def start(self) -> None:
        lab = self.lab
        command = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--bind", *(["127.0.0.1", "127.0.0.2"] if lab else ["127.0.0.1"]),
                   "--dir", str(self.folder),
                   *(["--requirepass", self.password] if self.password else [])]  # fmt: skip
        self.process = subprocess.Popen(
            lab.command(*command) if lab else command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with (
                    lab.inside() if lab else contextlib.nullcontext(),
                    socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
                ):
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
