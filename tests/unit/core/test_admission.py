"""Admission: connection caps in all and per address, counted until each connection is gone."""

from __future__ import annotations

from tcposcrouter.core.admission import Admission
from tcposcrouter.errors import ErrorCode
from tcposcrouter.limits import Limits


def test_caps_in_all_and_per_address() -> None:
    admission = Admission(Limits(max_connections=3, max_connections_per_address=2))
    assert admission.admit("192.0.2.1") is None
    assert admission.admit("192.0.2.1") is None
    refusal = admission.admit("192.0.2.1")
    assert refusal is not None and refusal.code == ErrorCode.SERVER_FULL and refusal.fatal
    assert "2 connections from your address" in refusal.detail
    refused_in_all = admission.admit("192.0.2.2")  # the refused one still holds a socket
    assert refused_in_all is not None and "3 connections" in refused_in_all.detail
    assert admission.connections() == 4 and admission.connections_from("192.0.2.1") == 3


def test_released_connections_make_room() -> None:
    admission = Admission(Limits(max_connections_per_address=1))
    assert admission.admit("192.0.2.1") is None
    admission.release("192.0.2.1")
    assert admission.connections_from("192.0.2.1") == 0 and admission.connections() == 0
    assert admission.admit("192.0.2.1") is None


def test_zero_is_no_limit() -> None:
    admission = Admission(Limits(max_connections=0, max_connections_per_address=0))
    assert all(admission.admit("192.0.2.1") is None for _ in range(1000))
