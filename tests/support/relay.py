"""A TCP relay between a client and the router that can go silent: `freeze()` stops carrying
the bytes of the connections it has (both ways), keeping them open, as a Wi-Fi link that dies
without a word does; connections made after it are carried as usual."""

from __future__ import annotations

import contextlib
import select
import socket
import threading

__all__ = ["FreezableRelay"]


class FreezableRelay:
    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._frozen: set[int] = set()  # the generations frozen
        self._generation = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        with self._lock:
            self._frozen.add(self._generation)
            self._generation += 1

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                generation = self._generation
                self._sockets += [client, upstream]
            threading.Thread(
                target=self._carry, args=(client, upstream, generation), daemon=True
            ).start()

    def _carry(self, client: socket.socket, upstream: socket.socket, generation: int) -> None:
        pairs = {client: upstream, upstream: client}
        while not self._stopping:
            try:
                readable, _, _ = select.select(list(pairs), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if generation not in self._frozen:
                        pairs[sock].sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stopping = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
