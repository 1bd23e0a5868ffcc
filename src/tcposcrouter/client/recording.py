"""The recording format of `tcposcrouter-client record` and `replay`: JSON lines.

The first line describes the recording; every further line is one packet the group sent, in
the order it arrived:

    {"tcposcrouter_recording": 1, "group": "band", "server": "…", "started": 1796178221.9}
    {"t": 0.0, "wall": 1796178222.0, "packet": "L25vdGUAAAAALGlmAAAAADw/AAAA"}
    {"t": 0.1253, "wall": 1796178222.1253, "packet": "…", "private": true}
    {"t": 0.2001, "wall": 1796178222.2001, "users": ["alice", "bob", "recorder"]}

`t` is seconds from the start of the recording to the packet's arrival (what replay keeps),
`wall` the Unix time of arrival (what moving time tags needs), `packet` the exact bytes in
base64. `private` marks a private message to the recorder (kept, never replayed); `users` a
user list (kept for the archive, never replayed). Readers ignore keys they do not know. Pure code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["FORMAT_VERSION", "BadRecording", "Record", "header", "read_records", "record_line"]

FORMAT_VERSION = 1


class BadRecording(ValueError):
    """Not a recording, or a line that cannot be read (its number is in the message)."""


@dataclass(frozen=True)
class Record:
    t: float
    wall: float
    packet: bytes | None = None  # None: a user list
    private: bool = False
    users: list[str] | None = None

    @property
    def replayable(self) -> bool:
        return self.packet is not None and not self.private


def header(group: str, server: str, started: float) -> str:
    return json.dumps(
        {"tcposcrouter_recording": FORMAT_VERSION, "group": group, "server": server,
         "started": started}
    )  # fmt: skip


def record_line(record: Record) -> str:
    fields: dict[str, Any] = {"t": round(record.t, 6), "wall": round(record.wall, 6)}
    if record.packet is not None:
        fields["packet"] = base64.b64encode(record.packet).decode("ascii")
    if record.private:
        fields["private"] = True
    if record.users is not None:
        fields["users"] = record.users
    return json.dumps(fields, ensure_ascii=False)


def read_records(lines: Iterable[str] | IO[str]) -> Iterator[Record]:
    """The records of a recording, after checking its first line."""
    numbered = enumerate(lines, 1)
    try:
        _, first = next(numbered)
        head = json.loads(first)
    except (StopIteration, ValueError):
        raise BadRecording("not a tcposcrouter recording (its first line is not JSON)") from None
    if not isinstance(head, dict) or head.get("tcposcrouter_recording") != FORMAT_VERSION:
        raise BadRecording("not a tcposcrouter recording of a format this version reads")
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            packet = fields.get("packet")
            yield Record(
                t=float(fields["t"]),
                wall=float(fields.get("wall", 0.0)),
                packet=None if packet is None else base64.b64decode(packet, validate=True),
                private=bool(fields.get("private", False)),
                users=fields.get("users"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRecording(f"line {number}: {exc}") from None
