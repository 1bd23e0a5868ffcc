"""What a port says to a client that reached it speaking another port's protocol.

A WebSocket URL or a browser at an OSC port, an OSC program at the HTTP port and `tls://` at a
plain port are the commonest mistakes of a first hour with the router. Each is told from the
connection's first byte (osc/first_bytes.py) and answered in the client's own language where
it has one, naming the port to use, then closed:

* HTTP at an OSC port: `400` with a plain-text body and the `Tcposcrouter-Port: osc` header
  (and `Tcposcrouter-WebSocket: ws://…/osc`, the URL to use), which the client library reads;
* OSC at the HTTP port: `/oscrouter/error ,ss wrong_port "…"` in the client's framing;
* TLS at a plain port: no reply a TLS client could show (it would read any as a broken
  record), so the connection is only closed.

Every one is logged at `-v` (docs/protocol.md §4, `wrong_port`). Pure code: the shells call
it with a connection's first bytes and write what it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ErrorCode
from ..osc.first_bytes import Speaks, first_bytes_speak
from ..osc.framing import Framing, frame
from ..osc.messages import error_message
from .config import ServerConfig, osc_ports

__all__ = ["WrongPort", "on_http_port", "on_osc_port"]

_HOST_HEADER = re.compile(rb"\r\nhost[ \t]*:[ \t]*([^\r\n]{1,255})", re.IGNORECASE)


@dataclass(frozen=True)
class WrongPort:
    detail: str  # for the log line: what came, and what was said
    answer: bytes  # to write before closing; b"": close without a word


def _url_host(request: bytes, fallback: str) -> str:
    """The host the client asked for (its Host header, without the port), for the URL it
    should use instead; `fallback` (the address it reached) when it sent none."""
    found = _HOST_HEADER.search(request)
    host = found.group(1).decode("latin-1").strip() if found else ""
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if not host or not all(c.isalnum() or c in "-.:[]" for c in host):
        host = f"[{fallback}]" if ":" in fallback else fallback
    return host


def _websocket_url(config: ServerConfig, host: str) -> str | None:
    if config.http_port is None:
        return None
    scheme = "wss" if config.tls is not None else "ws"
    return f"{scheme}://{host}:{config.http_port}/osc"


def _osc_ports(config: ServerConfig) -> str:
    ports = [f"{p.port} ({'TLS, ' if p.tls else ''}{p.framing})" for p in osc_ports(config)]
    return ", ".join(ports) or "none"


def on_osc_port(first: bytes, config: ServerConfig, local_host: str) -> WrongPort | None:
    """What an OSC port answers to a connection that starts with `first`; None: it speaks
    OSC (or nothing this module knows), and the hub reads it as usual."""
    speaks = first_bytes_speak(first)
    if speaks is Speaks.TLS:
        return WrongPort("TLS handshake at a plain OSC port (tls:// to the wrong port?)", b"")
    if speaks is not Speaks.HTTP:
        return None
    url = _websocket_url(config, _url_host(first, local_host))
    if url is None:
        elsewhere = "This router has no HTTP port: it takes OSC over TCP only."
        headers = b""
    else:
        page = url.replace("ws", "http", 1).removesuffix("osc")
        elsewhere = (
            f"WebSocket clients connect to {url}; the dashboard and the browser client "
            f"are at {page} and {page}client/."
        )
        headers = f"Tcposcrouter-WebSocket: {url}\r\n".encode()
    body = (
        "This is an OSC port of a tcposcrouter: OSC over plain TCP, for SuperCollider, "
        f"Pure Data and other OSC programs. {elsewhere}\n"
    ).encode()
    answer = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\nTcposcrouter-Port: osc\r\n"
        + headers
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return WrongPort(
        f"HTTP request at an OSC port (a WebSocket or a browser at the wrong port?): told {url}",
        answer,
    )


def on_http_port(first: bytes, config: ServerConfig) -> WrongPort | None:
    """What the HTTP port answers to a connection that starts with `first`; None: it speaks
    HTTP (or nothing this module knows), and aiohttp reads it as usual."""
    speaks = first_bytes_speak(first)
    if speaks is Speaks.TLS:
        return WrongPort("TLS handshake at the plain HTTP port (wss:// to a ws:// port?)", b"")
    if speaks is Speaks.OSC_LENGTH_PREFIX:
        framing = Framing.LENGTH_PREFIX
    elif speaks is Speaks.OSC_SLIP:
        framing = Framing.SLIP
    else:
        return None
    detail = (
        "this is the router's HTTP port (OSC over WebSocket at /osc, the dashboard, the "
        f"browser client); OSC over TCP is on port {_osc_ports(config)}"
    )
    return WrongPort(
        f"OSC at the HTTP port (an OSC program at the wrong port?): told {_osc_ports(config)}",
        frame(error_message(ErrorCode.WRONG_PORT, detail), framing),
    )
