"""The open connections (server/running.py's Connections): the way from a session back to its
connection, forgotten when the connection is gone."""

from __future__ import annotations

import socket

from support.net import Net
from tcposcrouter.core.register import PasswordCheck
from tcposcrouter.core.session import Session
from tcposcrouter.server.running import Connections


class Connection:
    def __init__(self, session: Session | None) -> None:
        self.session = session

    def password_checked(self, check: PasswordCheck) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def socket(self) -> socket.socket | None:
        return None


def test_a_session_leads_to_its_connection_until_it_is_gone() -> None:
    net = Net()
    first, second = net.connect(), net.connect()
    connections = Connections()
    one, two = Connection(first), Connection(second)
    for connection, session in ((one, first), (two, second)):
        connections.add(connection)
        connections.bind(session, connection)
    assert connections.of(first.id) is one and len(connections) == 2
    connections.gone(one)
    assert connections.of(first.id) is None and list(connections) == [two]
    connections.gone(one)  # twice is harmless
    assert len(connections) == 1


def test_a_connection_moved_away_leaves_the_new_owner_of_its_session_alone() -> None:
    net = Net()
    session = net.connect()
    connections = Connections()
    old, new = Connection(session), Connection(session)
    connections.bind(session, old)
    connections.bind(session, new)  # the session now travels on another connection
    connections.gone(old)
    assert connections.of(session.id) is new
