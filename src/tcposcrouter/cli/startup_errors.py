"""The router's start-up failures, told in one line with the flag that fixes each.

The kernel's words ("[Errno 98] error while attempting to bind on address ('0.0.0.0', 55555):
address already in use") name neither the router's port nor what to do. This says which of
the router's ports it is, who is likely to hold it, and the flag that moves it; and for a
certificate that does not load (OpenSSL's "[SSL] PEM lib"), which file and what to give.
"""

from __future__ import annotations

import errno
import re
import ssl
from pathlib import Path

from ..server.config import ServerConfig, osc_ports

__all__ = ["cannot_listen", "cannot_load_certificate"]

_ADDRESS = re.compile(r"address \('([^']*)', (\d+)")


def _ports(config: ServerConfig) -> dict[int, tuple[str, str]]:
    """Each port the router opens → (what it is, the flag that sets it)."""
    ports: dict[int, tuple[str, str]] = {}
    for osc in osc_ports(config):
        # As the flags' help says: "the OSC 1.0 port", "the TLS OSC 1.1 port".
        ports[osc.port] = (f"the {'TLS ' if osc.tls else ''}OSC {osc.version} port", osc.flag)
    if config.http_port is not None:
        ports[config.http_port] = ("the HTTP port", "--http-port")
    return ports


def cannot_listen(error: OSError, config: ServerConfig) -> str:
    """Why the router could not open one of its ports, and what to do."""
    found = _ADDRESS.search(str(error))
    host, port = (found.group(1), int(found.group(2))) if found else ("", 0)
    what, flag = _ports(config).get(port, (f"port {port}", "its flag"))
    named = f"port {port} ({what})" if port else "a port"
    if error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen: {named} is in use: another router or program holds it (`ss -ltnp "
            f"'sport = :{port}'` shows which); stop that one, or give this router another port "
            f"with {flag} PORT"
        )
    if error.errno == errno.EACCES:
        return (
            f"cannot listen: {named} needs privileges: ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE (docs/operating.md); or choose a port above 1023 with {flag}"
        )
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return (
            f"cannot listen on {host or 'that address'}: it is not an address of this "
            "machine; give one of its addresses with --host, or none for every interface"
        )
    return f"cannot listen: {error}"


def cannot_load_certificate(error: OSError, cert: Path, key: Path) -> str:
    """Why `--tls-cert` and `--tls-key` (`key` is `cert` when the key is in it) did not load."""
    if isinstance(error, FileNotFoundError | PermissionError):
        # OpenSSL does not say which of the two it was: ask the files.
        missing = isinstance(error, FileNotFoundError)
        bad = [path for path in (cert, key) if not (path.exists() if missing else _readable(path))]
        which = bad[0] if bad else cert
        flag = "--tls-key" if which == key and key != cert else "--tls-cert"
        if isinstance(error, FileNotFoundError):
            return f"cannot load the certificate: {which} ({flag}): no such file"
        return (
            f"cannot load the certificate: {which} ({flag}): permission denied: the router's "
            "user must be able to read it (docs/operating.md, TLS)"
        )
    said = str(getattr(error, "reason", None) or error)
    if isinstance(error, ssl.SSLError) and "KEY_VALUES_MISMATCH" in str(error):
        return (
            f"cannot load the certificate: the key {key} does not belong to the certificate "
            f"{cert}: give the key made with it (Let's Encrypt: privkey.pem beside fullchain.pem)"
        )
    if isinstance(error, ssl.SSLError) and key == cert:
        return (
            f"cannot load the certificate: {cert} ({said}): if its private key is in a file of "
            "its own, give it with --tls-key (Let's Encrypt: privkey.pem)"
        )
    return f"cannot load the certificate {cert} with the key {key}: {said}"


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False
