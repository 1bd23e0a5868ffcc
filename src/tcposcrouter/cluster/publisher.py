"""The cluster's connection for packets: PUBLISH commands (and the scripts that record state
changes) written back to back in the order the loop makes them, replies only counted (resp.py
says why this is not redis-py). Redis runs one connection's commands in order, so a state change
reaches the other nodes after the packets its member sent before it."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from redis.asyncio.connection import parse_url

from .resp import ReplyCounter, encode_command

__all__ = ["PacketPublisher"]

log = logging.getLogger("tcposcrouter.cluster")


class PacketPublisher:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._replies = ReplyCounter()
        self.open = True

    @classmethod
    async def connect(cls, url: str, timeout: float) -> PacketPublisher:
        settings = parse_url(url)
        if "path" in settings:  # unix://
            opening = asyncio.open_unix_connection(settings["path"])
        else:
            secure = ssl.create_default_context() if url.startswith("rediss://") else None
            opening = asyncio.open_connection(
                settings.get("host", "localhost"), settings.get("port", 6379), ssl=secure
            )
        reader, writer = await asyncio.wait_for(opening, timeout)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # A packet for another node leaves in the turn it was routed.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        publisher = cls(reader, writer)
        password = settings.get("password")
        if password is not None:
            user = settings.get("username")
            parts = [b"AUTH", *([user.encode()] if user else []), password.encode()]
            writer.write(encode_command(*parts))
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line.startswith(b"+"):
                writer.close()
                raise ConnectionError(f"Redis refused the password: {line.strip().decode()}")
        return publisher

    def publish(self, channel: bytes, data: bytes) -> None:
        self._writer.write(encode_command(b"PUBLISH", channel, data))

    def run_script(self, script: bytes, arguments: list[bytes]) -> None:
        """EVAL `script` with `arguments` as ARGV (no keys)."""
        self._writer.write(encode_command(b"EVAL", script, b"0", *arguments))

    async def read_replies(self) -> None:
        """Until the connection ends (then return), counting replies; an error reply is a
        bug or a misconfigured Redis, and is logged."""
        counter = self._replies
        try:
            while True:
                data = await self._reader.read(1 << 16)
                if not data:
                    return
                counter.feed(data)
                for error in counter.errors:
                    log.warning("cluster: Redis refused a publish or a state change: %s", error)
                counter.errors.clear()
        finally:
            self.open = False

    def close(self) -> None:
        self.open = False
        self._writer.close()
