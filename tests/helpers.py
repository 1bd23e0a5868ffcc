"""Shared test helpers: building OSC packets and a small blocking client over a real socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tcposcrouter.framing import (
    Framing,
    InvalidFrame,
    LengthPrefixDecoder,
    SlipDecoder,
    frame,
)


def osc_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return raw + b"\x00" * (4 - len(raw) % 4)


def raw_message(address: str, tags: str = ",", payload: bytes = b"") -> bytes:
    """A message from its parts, for packets python-osc cannot build (S, c, r, m, I, ...)."""
    return osc_string(address) + osc_string(tags) + payload


def msg(address: str, *args: str | bytes | int | float | bool | None) -> bytes:
    """A message with python-osc's type inference: int -> i, float -> f, str -> s, bytes -> b."""
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return bytes(builder.build().dgram)


def bundle(timetag: bytes, *elements: bytes) -> bytes:
    parts = [b"#bundle\x00", timetag]
    for element in elements:
        parts += [struct.pack(">i", len(element)), element]
    return b"".join(parts)


IMMEDIATELY = b"\x00\x00\x00\x00\x00\x00\x00\x01"


def register(
    user: str,
    group: str = "band",
    random_id: int | None = 1,
    *,
    password: str = "pw",
    group_password: str = "gpw",
) -> bytes:
    args: list[str | int] = [user, password, group, group_password]
    if random_id is not None:
        args.append(random_id)
    return msg("/oscrouter/register", *args)


@dataclass
class Received:
    """One packet as received: its exact bytes, and the decoded message when it is one."""

    raw: bytes

    @property
    def address(self) -> str:
        return str(OscMessage(self.raw).address) if self.raw[:1] == b"/" else "#bundle"

    @property
    def args(self) -> list[object]:
        return list(OscMessage(self.raw).params)

    def bundle(self) -> OscBundle:
        return OscBundle(self.raw)


class Client:
    """A blocking OSC-over-TCP client with the framing of choice, for integration tests."""

    _open: ClassVar[list[Client]] = []  # closed after each test by a fixture in conftest.py

    def __init__(
        self,
        port: int,
        framing: Framing = Framing.LENGTH_PREFIX,
        host: str = "127.0.0.1",
        source: str | None = None,
    ):
        self.framing = framing
        # `source` picks the client's own address: any of 127.0.0.0/8 works on Linux, so a test
        # can look like a host of its own to per-address limits.
        self.sock = socket.create_connection(
            (host, port), timeout=5, source_address=(source, 0) if source else None
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = (
            LengthPrefixDecoder(1 << 24)
            if framing is Framing.LENGTH_PREFIX
            else SlipDecoder(1 << 24)
        )
        self._queue: list[Received] = []
        self.closed = False
        Client._open.append(self)

    def send(self, packet: bytes) -> None:
        self.sock.sendall(frame(packet, self.framing))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        for packet in self._decoder.feed(data):
            assert not isinstance(packet, InvalidFrame), "the router sent an invalid SLIP frame"
            self._queue.append(Received(packet))
        return True

    def recv(self, timeout: float = 2.0) -> Received:
        deadline = time.monotonic() + timeout
        while not self._queue:
            if not self._fill(deadline):
                raise AssertionError(
                    "connection closed with nothing received"
                    if self.closed
                    else f"nothing received within {timeout} s"
                )
        return self._queue.pop(0)

    def recv_until(self, address: str, timeout: float = 2.0) -> Received:
        """Skip packets until one with `address` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.recv(max(0.01, deadline - time.monotonic()))
            if packet.address == address:
                return packet

    def expect_nothing(self, wait: float = 0.3) -> None:
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass
        assert not self._queue, f"unexpected: {[p.address for p in self._queue]}"

    def drain(self, wait: float = 0.2) -> list[Received]:
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass
        packets, self._queue = self._queue, []
        return packets

    def wait_closed(self, timeout: float = 2.0) -> list[Received]:
        """Read until the router closes the connection; return what came before."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._fill(deadline) and not self.closed:
                raise AssertionError(f"the router did not close the connection in {timeout} s")
        packets, self._queue = self._queue, []
        return packets

    def join(
        self, user: str, group: str = "band", *, password: str = "pw", group_password: str = "gpw"
    ) -> Client:
        """Register and consume the two replies and the first user list."""
        self.send(register(user, group, password=password, group_password=group_password))
        first = self.recv()
        assert first.address == f"/oscrouter/register/{user}/1", first.address
        self.recv_until("/oscrouter/userlist")
        return self

    def close(self) -> None:
        self.sock.close()

    @classmethod
    def close_all(cls) -> None:
        for client in cls._open:
            client.close()
        cls._open.clear()


class PeerProgram:
    """A real peer program (sclang, pd) run in its own process group, its output read by line.

    Both print marker lines the test waits for; a hard timeout guards every wait because a
    script that fails to compile makes sclang idle silently (TESTING.md).
    """

    def __init__(self, command: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: sclang spawns helper processes
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, marker: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if marker in line:
                        return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {marker!r} within {timeout} s; output:\n" + self.output())

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
