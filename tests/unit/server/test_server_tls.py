"""The router's certificate (server/tls.py): loaded once, reloaded in place, and a reload that
cannot be used keeps the running certificate."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from support.tls import make_certificate
from tcposcrouter.server.tls import TlsContext


def presented(context: ssl.SSLContext, cafile: Path) -> str:
    """The certificate (PEM) a handshake with `context` presents."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        conn, _ = server.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(server.getsockname()) as raw,
        client.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        seen.append(ssl.DER_cert_to_PEM_cert(der))
    thread.join()
    server.close()
    return seen[0]


def pem(path: Path) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(path.read_text()))


def test_a_renewed_certificate_is_presented_from_the_next_handshake(tmp_path: Path) -> None:
    old_cert, old_key = make_certificate(tmp_path / "old", "old")
    new_cert, new_key = make_certificate(tmp_path / "new", "new")
    running = TlsContext(old_cert, old_key)
    assert presented(running.context, old_cert) == pem(old_cert)
    running.reload(new_cert, new_key)
    assert presented(running.context, new_cert) == pem(new_cert)


def test_a_key_of_another_certificate_is_refused_and_the_running_one_kept(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path / "one", "one")
    _, other_key = make_certificate(tmp_path / "two", "two")
    running = TlsContext(cert, key)
    with pytest.raises(ssl.SSLError):
        running.reload(cert, other_key)
    assert presented(running.context, cert) == pem(cert)
    with pytest.raises(OSError):
        running.reload(tmp_path / "missing.pem", key)
