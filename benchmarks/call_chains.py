"""The router's call chains, traced in a running router: which of its functions a register and a
message pass through, and how many of its modules they cross, from the socket's read to the
write (the flush included).

    .venv/bin/python benchmarks/call_chains.py src /path/to/other/checkout/src

For each tree, a child process runs a RouterServer in-process with its event loop on the main
thread and a profile hook on that thread only; clients are plain sockets in another thread, so
only the router's own Python calls are counted. Each path is traced once warm (its first run
imports and builds caches) and printed with:

    calls      the router's Python function calls on the path
    modules    distinct modules of the router it crosses (and of those, the core's)
    call-backs calls into a module that is already further down the stack, called by another
               module (A > B > A): a part calling back into the part that called it

The paths: a register (keyed digests, decided at once), a register of a pinned user whose
password is an scrypt hash (decided after a worker thread) and one message to a group of 3.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any


def frame(packet: bytes) -> bytes:
    return struct.pack(">i", len(packet)) + packet


def read_frame(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", _exactly(sock, 4))[0]
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Tracer:
    """Counts the router's calls on the loop's thread while `armed`."""

    def __init__(self, tree: Path) -> None:
        self.root = str((tree / "tcposcrouter").resolve())
        self.armed = False
        self.calls: list[tuple[str, str]] = []
        self.callbacks: list[str] = []  # "caller > callee" of each call-back
        self._stack: list[str] = []  # the modules of the router's frames, innermost last

    def __call__(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if not self.armed or event not in ("call", "return"):
            return
        filename = frame.f_code.co_filename
        if not filename.startswith(self.root):
            return
        module = filename[len(self.root) + 1 : -3].replace("/", ".")
        stack = self._stack
        if event == "call":
            self.calls.append((module, frame.f_code.co_name))
            if stack and stack[-1] != module and module in stack:
                self.callbacks.append(f"{stack[-1]} > {module}")
            stack.append(module)
        elif stack:
            stack.pop()

    def arm(self) -> None:
        self.calls.clear()
        self.callbacks = []
        self._stack.clear()
        self.armed = True

    def report(self, name: str) -> str:
        modules = [module for module, _ in self.calls]
        core = {module for module in modules if module.startswith("core.")}
        chain: list[str] = []
        for module in modules:
            if not chain or chain[-1] != module:
                chain.append(module)
        return (
            f"{name}: {len(self.calls)} calls, {len(set(modules))} modules "
            f"({len(core)} of the core: {', '.join(sorted(core))}), "
            f"{len(self.callbacks)} call-backs ({', '.join(sorted(set(self.callbacks)))})"
            f"\n    " + " > ".join(chain)
        )


def drive(tree: Path) -> None:
    sys.path.insert(0, str(tree))
    from tcposcrouter.core.auth import PasswordHash
    from tcposcrouter.core.pinned import GroupRules, PinnedGroup
    from tcposcrouter.limits import Limits
    from tcposcrouter.osc.messages import build_message, register_message
    from tcposcrouter.server.app import RouterServer
    from tcposcrouter.server.config import ServerConfig

    # Parsed from their encoded form, as the configuration file gives them: no password is
    # remembered, so the first check of each needs scrypt.
    def from_file(password: str) -> PasswordHash:
        return PasswordHash.parse(PasswordHash(password).encode())

    users = {"ann": from_file("annpw"), "eve": from_file("evepw")}
    pinned = PinnedGroup("stage", from_file("stagepw"), users)
    limits = Limits(rate_limit_packets=0, rate_limit_bytes=0)
    config = ServerConfig(
        hosts=["127.0.0.1"],
        osc10_port=0,
        osc11_port=None,
        http_port=None,
        limits=limits,
        group_rules=GroupRules(pinned=(pinned,)),
    )
    tracer = Tracer(tree)
    results: list[str] = []

    def clients(port: int, stop: Callable[[], None]) -> None:
        def connect() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock

        def register(
            sock: socket.socket, user: str, group: str, gpw: str, pw: str, then: bytes = b""
        ) -> None:
            """A register, and `then` in the same write (as a client that plays at once)."""
            sock.sendall(frame(register_message(user, pw, group, gpw, 1)) + then)
            while not read_frame(sock).startswith(b"/oscrouter/register"):
                pass

        def traced(name: str, step: Callable[[], None]) -> None:
            tracer.arm()
            step()
            tracer.armed = False
            results.append(tracer.report(name))

        try:
            members = [connect() for _ in range(4)]
            for index, sock in enumerate(members[:3]):
                register(sock, f"u{index}", "band", "gpw", "pw")
            for sock in members[:3]:
                sock.settimeout(0.2)
                try:
                    while sock.recv(65536):
                        pass
                except TimeoutError:
                    pass
                sock.settimeout(None)
            note = build_message("/note", ("i", 60))
            members[0].sendall(frame(note))  # warm
            read_frame(members[1]), read_frame(members[2])
            traced(
                "register (keyed digests) and a message behind it",
                lambda: register(members[3], "u3", "band", "gpw", "pw", frame(note)),
            )
            for sock in members[:3]:
                read_frame(sock), read_frame(sock)  # the user list, and u3's message
            stage = [connect(), connect()]
            register(stage[0], "ann", "stage", "stagepw", "annpw")  # warm: scrypt path
            traced(
                "register (scrypt, in a worker thread) and a message behind it",
                lambda: register(stage[1], "eve", "stage", "stagepw", "evepw", frame(note)),
            )

            def one_message() -> None:
                members[0].sendall(frame(note))
                read_frame(members[1]), read_frame(members[2])

            traced("one message to a group of 3", one_message)
            for sock in members + stage:
                sock.close()
        finally:
            stop()

    async def main() -> None:
        server = RouterServer(config)
        addresses = await server.start()
        port = int(addresses[0].split(" ")[0].rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        thread = threading.Thread(
            target=clients, args=(port, lambda: loop.call_soon_threadsafe(done.set))
        )
        sys.setprofile(tracer)
        thread.start()
        await done.wait()
        sys.setprofile(None)
        thread.join()
        await server.stop()

    asyncio.run(main())
    print("\n".join(results))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--drive"]:
        drive(Path(argv[1]))
        return 0
    for tree in argv:
        print(f"== {tree}")
        done = subprocess.run([sys.executable, __file__, "--drive", tree], check=True)
        assert done.returncode == 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
