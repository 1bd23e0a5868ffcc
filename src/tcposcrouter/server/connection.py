"""The one path from a transport shell into the hub, shared by TCP and WebSocket connections:
every call passes the time, turns an exception out of the hub into that connection's end
alone (it is a bug, not the peer's fault), and schedules the flush and the password checks the
call may have queued.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from ..core.register import PasswordCheck
from ..core.session import Session, SessionState
from ..errors import RemoteError
from ..osc.framing import Framing
from .running import RunningRouter

log = logging.getLogger("tcposcrouter.server")

__all__ = ["HubConnection"]


class HubConnection:
    """Base of the transport shells' connections; they add how bytes are read and written."""

    # Sink.write: the subclass's (TcpConnection binds its transport's own write).
    write: Callable[[bytes], None]
    __slots__ = ("_hub", "_router", "session")

    def __init__(self, router: RunningRouter) -> None:
        self._router = router
        self._hub = router.hub
        self.session: Session | None = None

    def close(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def socket(self) -> socket.socket | None:
        raise NotImplementedError

    def password_checked(self, check: PasswordCheck) -> None:
        raise NotImplementedError

    def open_session(self, peer: str, address: str, framing: Framing | None = None) -> Session:
        router = self._router
        self.session = session = self._hub.open(peer, address, router.now(), self, framing)
        router.connections.bind(session, self)
        return session

    def hub_receive(self, session: Session, data: bytes) -> float:
        """`Hub.receive`: return how long to stop reading (see there)."""
        router = self._router
        try:
            pause = self._hub.receive(session, data, router.now())
        except Exception:
            router.hub_failed(self, session)
            pause = 0.0
        router.output_ready()
        if session.state is SessionState.REGISTERING:  # its check may wait for the shell
            router.checks_ready()
        return pause

    def hub_checked(self, check: PasswordCheck) -> float:
        """`Hub.checked`, on the event loop once a worker thread has run `check`."""
        router = self._router
        try:
            pause = self._hub.checked(check, router.now())
        except Exception:
            router.hub_failed(self, check.session)
            pause = 0.0
        router.output_ready()
        router.checks_ready()
        return pause

    def hub_refuse(self, error: RemoteError) -> None:
        """What the shell's transport refused with a reply (a WebSocket text message): the
        hub's error policy answers it, as for a bad packet."""
        session = self.session
        if session is not None:
            self._hub.errors.refuse(session, error, self._router.now())
            self._router.output_ready()

    def hub_count(self, code: str, detail: str) -> None:
        """What the shell's transport refused and closes itself (a wrong port, a broken
        frame): counted and logged by the hub as that error; nothing can be sent."""
        session = self.session
        if session is not None:
            self._hub.errors.count(session, code, detail)

    def hub_slow_consumer(self, buffered: int) -> None:
        """More than `max_output_buffer` bytes wait: called on a turn of its own, never from
        inside a write (a Sink must not call back into the hub)."""
        session = self.session
        if session is not None:
            self._hub.errors.slow_consumer(session, buffered, self._router.now())
            self._router.output_ready()

    def moved_to(self, owner: int, group: str, how: str) -> None:
        """With --workers: the connection now lives in worker `owner`, which owns `group`
        (`how`: "handed" or "relayed"). Forgotten here, quietly: no leave, no goodbye."""
        session = self.session
        assert session is not None
        log.info("%s %s to worker %d, which owns %s", session.describe(), how, owner, group)
        self.hub_gone()
        self.session = None

    def hub_gone(self) -> None:
        """The connection is gone, whoever closed it."""
        router = self._router
        router.connections.gone(self)
        session = self.session
        if session is not None:
            self._hub.gone(session, router.now())
            router.output_ready()
        router.connection_closed()
