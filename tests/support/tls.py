"""Certificates made at test time with openssl, and TLS connections that trust only them."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

from support.peers import require_program

__all__ = ["common_name", "make_certificate", "tls_socket"]


def make_certificate(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with openssl; `name` is its
    subject's common name, which tells one certificate from the next."""
    openssl = require_program("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_socket(port: int, trusted: Path) -> ssl.SSLSocket:
    """A TLS connection to the router on `port` that accepts only the certificate `trusted`,
    for the name localhost, as a client checking a real certificate would."""
    context = ssl.create_default_context(cafile=str(trusted))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="localhost")


def common_name(sock: ssl.SSLSocket) -> str:
    """The subject's common name of the certificate the router presented."""
    certificate = sock.getpeercert()
    assert certificate is not None
    subject: Any = certificate["subject"]  # ((("commonName", "first"),), ...)
    for entry in subject:
        for key, value in entry:
            if key == "commonName":
                return str(value)
    raise AssertionError("no common name")
