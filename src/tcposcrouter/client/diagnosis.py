"""Why a client could not join a router, in one line that names the likely cause and the fix.

The commonest mistakes of a first hour are the wrong port or scheme for the port (`ws://` at an
OSC port or at the HTTPS port, a plain client at a TLS port, an OSC client at the HTTP port), a
wrong WebSocket path, and a router whose certificate this machine does not trust. The asyncio
client gathers what it saw (an exception, the first bytes, an HTTP status) and raises
`CannotConnect` with the sentence made here. Pure code: no sockets.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..osc.first_bytes import Speaks
from ..osc.framing import (
    DEFAULT_HTTP_PORT,
    DEFAULT_OSC10_PORT,
    DEFAULT_OSC11_PORT,
    DEFAULT_TLS_OSC10_PORT,
)

__all__ = ["CannotConnect", "Target"]

DEFAULTS = (
    f"its default ports are {DEFAULT_OSC10_PORT} (OSC), {DEFAULT_OSC11_PORT} (SLIP), "
    f"{DEFAULT_HTTP_PORT} (WebSocket)"
)


class CannotConnect(ConnectionError):
    """No register reply could be had from the router at `server`: `reason` says why and what
    to do, in one line. An OSError, as the errors of connecting it stands for. `lasting`: trying
    again will not help (a wrong port, scheme or path, an untrusted certificate), where a router
    that is down or restarting may be back in a moment."""

    def __init__(self, server: str, reason: str, *, lasting: bool = True) -> None:
        super().__init__(f"cannot connect to {server}: {reason}")
        self.server = server
        self.reason = reason
        self.lasting = lasting


@dataclass(frozen=True)
class Target:
    """Where a client connects, as given (`server`) and as its parts."""

    server: str
    kind: str  # "tcp", "tls" or "ws"
    host: str
    port: int
    slip: bool = False
    secure_ws: bool = False
    path: str = "/osc"

    @classmethod
    def websocket(cls, url: str) -> Target:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        return cls(url, "ws", parts.hostname or "", port, secure_ws=secure, path=parts.path)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def secure(self) -> bool:
        return self.kind == "tls" or self.secure_ws

    def fail(self, reason: str, *, lasting: bool = True) -> CannotConnect:
        return CannotConnect(self.server, reason, lasting=lasting)

    # -- before a byte came back ---------------------------------------------------------

    def os_error(self, error: OSError) -> CannotConnect:
        """Connecting failed in the kernel or the name lookup."""
        if isinstance(error, ConnectionRefusedError):
            return self.fail(
                f"nothing listens on {self.where} (connection refused): is the router running "
                f"there, and is {self.port} its port? ({DEFAULTS})",
                lasting=False,
            )
        if isinstance(error, socket.gaierror):
            return self.fail(
                f"cannot find the host {self.host!r} (name lookup failed): check its spelling "
                "and this machine's network",
                lasting=False,
            )
        if isinstance(error, TimeoutError):
            return self.timed_out()
        if self.secure and isinstance(error, ConnectionResetError | ConnectionAbortedError):
            return self._not_tls("closed during the TLS handshake")
        reason = error.strerror or str(error) or type(error).__name__
        return self.fail(
            f"{self.where} cannot be reached ({reason}): check the address", lasting=False
        )

    def timed_out(self) -> CannotConnect:
        return self.fail(
            f"no answer from {self.where}: a firewall may drop that port, or the host is down",
            lasting=False,
        )

    def tls_error(self, error: ssl.SSLError) -> CannotConnect:
        """The TLS handshake failed: a certificate not trusted here, or no TLS at that port."""
        if isinstance(error, ssl.SSLCertVerificationError):
            return self.fail(self._certificate(error))
        return self._not_tls(str(getattr(error, "reason", None) or error))

    def _not_tls(self, what: str) -> CannotConnect:
        if self.kind == "ws":
            instead = f"use ws://{self.where}{self.path}, or wss:// at the router's HTTPS port"
        else:
            plain = f"{'slip://' if self.slip else ''}{self.where}"
            instead = (
                f"leave out tls:// (--server {plain}), or use the router's TLS port "
                f"({DEFAULT_TLS_OSC10_PORT} by default)"
            )
        return self.fail(
            f"{self.where} does not answer in TLS ({what}): it is most likely a plain port; "
            + instead
        )

    def _certificate(self, error: ssl.SSLCertVerificationError) -> str:
        said = error.verify_message or getattr(error, "reason", None) or str(error)
        code = error.verify_code
        if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return (
                f"the router's certificate is not for {self.host!r} ({said}): connect with the "
                "name (or address) the certificate was made for"
            )
        if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return f"the router's certificate has expired ({said}): its operator must renew it"
        return (
            f"the router's certificate is not trusted on this machine ({said}): if it is the "
            "router's own self-made certificate, get that file (the PEM given to --tls-cert) "
            "from its operator and run with SSL_CERT_FILE=router.pem set, or add it to this "
            "machine's trusted authorities"
        )

    # -- what came back instead of a register reply ------------------------------------

    def speaks_tls(self) -> CannotConnect:
        """A plain client reached a port that speaks TLS."""
        if self.kind == "ws":
            url = f"wss://{self.where}{self.path or '/osc'}"
        else:
            url = f"{'tls+slip' if self.slip else 'tls'}://{self.where}"
        return self.fail(f"{self.where} speaks TLS: use {url}")

    def first_bytes(self, speaks: Speaks) -> CannotConnect:
        """An OSC client got bytes back that are not OSC."""
        if speaks is Speaks.TLS:
            return self.speaks_tls()
        if speaks is Speaks.HTTP:
            return self.fail(
                f"{self.where} speaks HTTP, not OSC over TCP: it is a web port (the router's "
                f"HTTP port is {DEFAULT_HTTP_PORT} by default); for a WebSocket use "
                f"ws://{self.where}/osc, for OSC over TCP the router's OSC port "
                f"({DEFAULT_OSC10_PORT})"
            )
        return self.fail(
            f"{self.where} answered with bytes that are not OSC: it is not a tcposcrouter "
            f"port ({DEFAULTS})"
        )

    def http_status(self, status: int, headers: dict[str, str]) -> CannotConnect:
        """The WebSocket handshake was answered with `status` instead of 101."""
        if headers.get("tcposcrouter-port") == "osc":
            url = headers.get("tcposcrouter-websocket")
            instead = f", or the router's WebSocket: {url}" if url else ""
            return self.fail(
                f"{self.where} is an OSC port of the router (plain TCP), not its WebSocket "
                f"port: connect to it without ws:// (--server {self.where}){instead}"
            )
        url = f"{'wss' if self.secure_ws else 'ws'}://{self.where}/osc"
        if status == 404:
            return self.fail(
                f"there is no WebSocket at {self.path or '/'} on {self.where} (HTTP 404): the "
                f"router's is at /osc: {url}"
            )
        if status == 503:
            return self.fail(
                f"{self.where} is stopping or not ready (HTTP 503): try again", lasting=False
            )
        return self.fail(
            f"{self.where} refused the WebSocket with HTTP {status}: is it the router's HTTP "
            f"port? Its WebSocket is {url}"
        )

    def not_http(self) -> CannotConnect:
        """The WebSocket handshake was answered with bytes that are not HTTP."""
        return self.fail(
            f"{self.where} does not speak HTTP: it may be an OSC port; connect to it without "
            f"ws:// (--server {self.where})"
        )

    def closed_unanswered(self) -> CannotConnect:
        return self.fail(
            f"{self.where} closed the connection without answering the register: it may not "
            f"be a tcposcrouter port ({DEFAULTS}), or the router is stopping",
            lasting=False,
        )

    def unanswered(self, seconds: float) -> CannotConnect:
        return self.fail(
            f"connected to {self.where}, but the register got no reply in {seconds:g} s: is "
            f"it a tcposcrouter port? ({DEFAULTS})",
            lasting=False,
        )

    def wrong_port(self, detail: str) -> CannotConnect:
        """The router itself said the port is the wrong one (`wrong_port`)."""
        return self.fail(f"wrong port: {detail}")
