"""What cannot start is told in one line with what to do (cli/startup_errors.py): a port that
cannot be opened, a certificate that does not load."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from tcposcrouter.cli.router import (
    parse_args,
    server_config,
)
from tcposcrouter.cli.startup_errors import cannot_listen, cannot_load_certificate
from tcposcrouter.server.tls import TlsContext


def test_a_port_in_use_names_the_port_and_the_flag_that_moves_it() -> None:
    config = server_config(parse_args(["--http-port", "8080"]))
    in_use = OSError(
        errno.EADDRINUSE,
        "error while attempting to bind on address ('0.0.0.0', 8080): address already in use",
    )
    said = cannot_listen(in_use, config)
    assert said.startswith("cannot listen: port 8080 (the HTTP port) is in use: another router")
    assert said.endswith("with --http-port PORT")
    low = OSError(errno.EACCES, "error while attempting to bind on address ('::', 55555): denied")
    assert "root or CAP_NET_BIND_SERVICE" in cannot_listen(low, config)
    assert "--osc-port" in cannot_listen(low, config)
    away = OSError(errno.EADDRNOTAVAIL, "… bind on address ('10.9.9.9', 55555): cannot assign")
    assert cannot_listen(away, config).startswith("cannot listen on 10.9.9.9: it is not an address")


def test_a_certificate_that_does_not_load_names_the_file_and_what_to_give(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    made = {}
    for name in ("one", "two"):
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        made[name] = (cert, key)
    (cert, key), (_, other_key) = made["one"], made["two"]

    def said(cert: Path, key: Path) -> str:
        with pytest.raises(OSError) as raised:
            TlsContext(cert, key)
        return cannot_load_certificate(raised.value, cert, key)

    missing = tmp_path / "nope.pem"
    assert (
        said(cert, missing) == f"cannot load the certificate: {missing} (--tls-key): no such file"
    )
    assert said(missing, missing) == (
        f"cannot load the certificate: {missing} (--tls-cert): no such file"
    )
    assert said(cert, other_key).startswith(
        f"cannot load the certificate: the key {other_key} does not belong to the "
        f"certificate {cert}"
    )
    assert "give it with --tls-key" in said(cert, cert)  # the key is not in the certificate's file
