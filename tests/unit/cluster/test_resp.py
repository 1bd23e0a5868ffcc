"""The few bytes of Redis's protocol the publisher writes and counts (cluster/resp.py)."""

from __future__ import annotations

import pytest

from tcposcrouter.cluster.resp import ReplyCounter, encode_command


def test_resp_commands_and_replies() -> None:
    assert encode_command(b"PUBLISH", b"ch", b"a\r\nb") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n"
    )
    counter = ReplyCounter()
    for piece in (b":1\r\n:", b"0\r\n-ERR no", b"\r\n+OK\r\n"):
        counter.feed(piece)
    assert counter.replies == 4 and counter.errors == ["ERR no"]
    with pytest.raises(ValueError):
        counter.feed(b"$5\r\nhello\r\n")
