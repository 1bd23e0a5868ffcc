"""Why a client could not join, in one line with the fix (client/diagnosis.py)."""

from __future__ import annotations

import socket
import ssl

import pytest

from tcposcrouter.client.diagnosis import Target
from tcposcrouter.client.link import target_of
from tcposcrouter.osc.first_bytes import Speaks


def certificate_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_code, error.verify_message = code, message
    return error


def test_certificates_each_get_their_own_advice() -> None:
    target = target_of("tls://band.example.org")
    untrusted = target.tls_error(certificate_error(18, "self-signed certificate")).reason
    assert "not trusted on this machine (self-signed certificate)" in untrusted
    assert "SSL_CERT_FILE=router.pem" in untrusted
    other_name = target.tls_error(certificate_error(62, "Hostname mismatch")).reason
    assert other_name.startswith("the router's certificate is not for 'band.example.org'")
    expired = target.tls_error(certificate_error(10, "certificate has expired")).reason
    assert "has expired" in expired and "renew" in expired


def test_the_kernels_refusals() -> None:
    target = target_of("band.example.org:6000")
    assert target.os_error(ConnectionRefusedError()).reason.startswith(
        "nothing listens on band.example.org:6000 (connection refused)"
    )
    lookup = target.os_error(socket.gaierror(-2, "Name or service not known"))
    assert lookup.reason.startswith("cannot find the host 'band.example.org'")
    assert not lookup.lasting  # a network that comes back fixes it
    assert "a firewall may drop" in target.os_error(TimeoutError()).reason


@pytest.mark.parametrize(
    ("status", "headers", "said"),
    [
        (404, {}, "there is no WebSocket at /wrong on h:55557 (HTTP 404): the router's is at /osc"),
        (503, {}, "h:55557 is stopping or not ready (HTTP 503): try again"),
        (403, {}, "h:55557 refused the WebSocket with HTTP 403"),
        (
            400,
            {"tcposcrouter-port": "osc", "tcposcrouter-websocket": "ws://h:9/osc"},
            "h:55557 is an OSC port of the router (plain TCP), not its WebSocket port: connect "
            "to it without ws:// (--server h:55557), or the router's WebSocket: ws://h:9/osc",
        ),
    ],
)
def test_a_websocket_handshake_refused(status: int, headers: dict[str, str], said: str) -> None:
    target = Target.websocket("ws://h:55557/wrong")
    assert target.http_status(status, headers).reason.startswith(said)


def test_what_the_first_bytes_back_say() -> None:
    target = target_of("slip://h:55557")
    assert "speaks HTTP, not OSC over TCP" in target.first_bytes(Speaks.HTTP).reason
    assert target.first_bytes(Speaks.TLS).reason == "h:55557 speaks TLS: use tls+slip://h:55557"
    assert "not a tcposcrouter port" in target.first_bytes(Speaks.UNKNOWN).reason


def test_tls_at_a_plain_port() -> None:
    said = target_of("tls://h:55555").tls_error(ssl.SSLError(1, "wrong version number")).reason
    assert "does not answer in TLS" in said and "leave out tls:// (--server h:55555)" in said
    ws = Target.websocket("wss://h:55557/osc").os_error(ConnectionResetError()).reason
    assert "use ws://h:55557/osc" in ws
