"""The router's TLS certificate: one server-side context shared by every TLS listener (the TCP
ports and HTTPS), reloaded in place on SIGHUP when Let's Encrypt renews the files.

A reload first loads the files into a context of its own: a certificate and key that do not
belong together, or a file half written, are refused there and the running context is never
touched. Only then does the running context load them too, and every handshake from then on
presents the new certificate; connections already open keep theirs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsConfig", "TlsContext"]


@dataclass(frozen=True)
class TlsConfig:
    cert: Path  # PEM: the certificate, then its chain (Let's Encrypt's fullchain.pem)
    key: Path  # PEM private key (privkey.pem)
    osc10_port: int | None
    osc11_port: int | None


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class TlsContext:
    def __init__(self, cert: Path, key: Path) -> None:
        self.context = _context(cert, key)

    def reload(self, cert: Path, key: Path) -> None:
        """Load the files again; raise OSError or ssl.SSLError, with the running certificate
        kept, if they cannot be used."""
        _context(cert, key)  # refuses what the running context must not load
        self.context.load_cert_chain(cert, key)
