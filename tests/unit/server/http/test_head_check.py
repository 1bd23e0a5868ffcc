"""The door's check of a request head before aiohttp reads it (server/http/head_check.py): real
clients' heads pass whole and at every split; what aiohttp would echo or misanswer is refused
with an answer that repeats nothing of the request."""

from __future__ import annotations

import pytest

from tcposcrouter.server.http.head_check import MAX_LINE, check_head, check_partial_head

REAL_HEADS = [
    # Chromium's WebSocket handshake (the browser client, osc.js, Strudel)
    b"GET /osc HTTP/1.1\r\nHost: 127.0.0.1:55557\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    b"(KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\n"
    b"Origin: http://127.0.0.1:55557\r\nSec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: de-DE,de;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    # python websockets, with a URL registration
    b"GET /osc?user=ana&password=p%C3%A4ss&group=band&group_password=g HTTP/1.1\r\n"
    b"Host: localhost:55557\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n"
    b"User-Agent: Python/3.11 websockets/15.0\r\n\r\n",
    # nginx in front of port 443 (examples/nginx)
    b"GET /osc HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nHost: band.example.org\r\n"
    b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n",
    # curl, and a Prometheus scrape
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:55557\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: r:55557\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
    b"Accept-Encoding: gzip\r\nUser-Agent: Prometheus/2.45.3\r\n"
    b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("head", REAL_HEADS)
def test_real_heads_pass_whole_and_at_every_split(head: bytes) -> None:
    assert check_head(head) is None
    for cut in range(len(head)):
        assert check_partial_head(head[:cut]) is None
        assert check_partial_head(head[:cut], max(0, cut - 1)) is None  # dripped a byte a read


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /healthz\r\n", 400),  # HTTP/0.9
        (b"GET /healthz HTTP/2.0\r\n", 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),  # HTTP/2 with prior knowledge
        (b"get / HTTP/1.1\r\n", 400),
        (b"GET http://elsewhere/ HTTP/1.1\r\n", 400),  # absolute form: a proxy request
        (b"GET /a b HTTP/1.1\r\n", 400),
        (b"GET /" + b"p" * MAX_LINE + b" HTTP/1.1\r\n", 414),
        (b"GET /osc HTTP/1.1\r\nX: \x01\r\n", 400),
        (b"GET /osc HTTP/1.1\r\n folded\r\n", 400),
        (b"GET /osc HTTP/1.1\r\nCookie: " + b"c" * MAX_LINE + b"\r\n", 431),
        (b"GET /osc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 400),
        (b"GET /osc HTTP/1.1\r\nContent-Length: 12\r\n", 400),
    ],
)
def test_refused_heads_repeat_nothing_of_the_request(head: bytes, status: int) -> None:
    refusal = check_partial_head(head)
    assert refusal is not None and refusal.status == status
    dripped = [check_partial_head(head[:cut], max(0, cut - 1)) for cut in range(len(head) + 1)]
    assert [r.status for r in dripped if r is not None][:1] == [status]  # seen a byte at a time
    answer = refusal.answer()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in answer
    body = answer.partition(b"\r\n\r\n")[2]
    assert len(body) < 80 and not set(head.split(b"\r\n")[0].split()[1:2]) & set(body.split())


def test_a_request_line_too_long_is_refused_before_it_ends() -> None:
    refusal = check_partial_head(b"GET /osc?password=secret&pad=" + b"x" * MAX_LINE)
    assert refusal is not None and refusal.status == 414
    assert b"secret" not in refusal.answer()
