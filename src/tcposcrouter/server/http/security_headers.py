"""What every page of the HTTP port says to the browser about itself (docs/operating.md, "The
HTTP port on the public internet").

The pages (the dashboard, the browser client) load their scripts and styles from files of
their own, never inline, and write what members send (names, OSC arguments) as text
(`textContent`), never as markup. The Content-Security-Policy holds them to that: even a
mistake that put a member's text into the page as markup would not run it. Framing is refused
(no clickjacking of the dashboard), and nothing is sniffed into another type.
"""

from __future__ import annotations

from aiohttp import web

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "IMPORTABLE",
    "SECURITY_HEADERS",
    "add_security_headers",
]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        # The browser client may join a router elsewhere: any ws:// or wss:// server.
        "connect-src 'self' ws: wss:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# The ES module other sites' code imports (Strudel, Hydra, p5.js: docs/client-tools.md) and the
# osc.js it loads: readable from any origin. They are static files of the router's own; they
# hold nothing of anyone's.
IMPORTABLE = frozenset({"/client/tcposcrouter.js", "/client/vendor/osc-browser.min.js"})


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp's `on_response_prepare` signal: every response, pages, files and errors alike."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path in IMPORTABLE:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
