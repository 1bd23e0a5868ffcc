"""The security headers (server/http/security_headers.py) on every response of an aiohttp app
that carries the signal: pages, errors and files alike, over a real loopback socket."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tcposcrouter.server.http.security_headers import SECURITY_HEADERS, add_security_headers


async def headers_of(paths: list[str]) -> list[dict[str, str]]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p>hello</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.on_response_prepare.append(add_security_headers)
    async with TestClient(TestServer(app)) as client:
        seen = []
        for path in paths:
            response = await client.get(path)
            seen.append(dict(response.headers))
        return seen


def test_every_response_carries_them_the_404_too() -> None:
    for headers in asyncio.run(headers_of(["/", "/nothing-here"])):
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
