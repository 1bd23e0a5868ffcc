"""Socket options and names (server/sockets.py), on real loopback sockets."""

from __future__ import annotations

import socket
import sys

import pytest

from tcposcrouter.limits import Limits
from tcposcrouter.server.sockets import format_peer, peer_host, round_trip_ms, tune_socket


def test_peer_names_for_logs_and_per_address_limits() -> None:
    assert format_peer(("192.0.2.1", 4000)) == "192.0.2.1:4000"
    assert format_peer(("2001:db8::1", 4000, 0, 0)) == "[2001:db8::1]:4000"
    assert format_peer("/run/socket") == "/run/socket"
    assert peer_host(("2001:db8::1", 4000, 0, 0)) == "2001:db8::1"
    assert peer_host("/run/socket") is None


def test_a_tuned_socket_sends_at_once_and_notices_a_vanished_peer() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        tune_socket(accepted, Limits())
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        tune_socket(None, Limits())  # a transport without a socket: nothing to do
    finally:
        for sock in (client, accepted, server):
            sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")
def test_the_round_trip_the_kernel_measured() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        client.sendall(b"x")
        accepted.recv(1)
        measured = round_trip_ms(accepted)
        assert measured is not None and 0.0 <= measured[0] < 100.0
    finally:
        for sock in (client, accepted, server):
            sock.close()
    assert round_trip_ms(accepted) is None  # closed
    assert round_trip_ms(None) is None
