"""Errors of the router, and the wire codes they carry (docs/protocol.md §4).

Every error a *peer* can cause is a `RemoteError`: it carries the stable code that goes into the
`/oscrouter/error ,ss code message` reply and says whether the connection is closed after it.
Anything else raised inside the router is a bug and is allowed to surface loudly.
"""

from __future__ import annotations

__all__ = ["EX_CONFIG", "ClusterRefused", "ErrorCode", "RemoteError", "RouterError"]


class ErrorCode:
    """The machine-readable words sent in `/oscrouter/error` replies. They never change meaning."""

    AUTH_FAILED = "auth_failed"  # wrong group or user password
    BAD_REGISTER = "bad_register"  # a register whose arguments do not fit the contract
    ALREADY_REGISTERED = "already_registered"  # a second register on a registered connection
    NOT_REGISTERED = "not_registered"  # the first packet on a connection was not a register
    BAD_PRIVATE = "bad_private"  # a private message without a target name and an address
    BAD_TIME = "bad_time"  # /oscrouter/time without exactly one time tag
    BAD_TEMPO = "bad_tempo"  # a tempo request or change outside the contract (docs/protocol.md)
    BAD_STATE = "bad_state"  # a state set, clear or follow outside the contract
    STATE_FULL = "state_full"  # the group's state would pass its bounds: neither kept nor sent
    BAD_SESSION = "bad_session"  # a session request or acknowledgement outside the contract
    # A resume the router cannot do (unknown or ended place, a number it no longer has): the
    # connection stays open, to register on (docs/protocol.md §14)
    RESUME_EXPIRED = "resume_expired"
    UNKNOWN_USER = "unknown_user"  # a private message to somebody not in the group
    UNKNOWN_COMMAND = "unknown_command"  # an /oscrouter/ address a client may not send
    PACKET_INVALID = "packet_invalid"  # the packet is not valid OSC; it is dropped
    PACKET_TOO_LARGE = "packet_too_large"  # over the maximum packet size; connection closed
    FRAMING_ERROR = "framing_error"  # the byte stream cannot be split into packets; closed
    SERVER_FULL = "server_full"  # too many connections (in all, or from one address) or groups
    GROUP_FULL = "group_full"  # the group has as many users as it may have
    LOGIN_THROTTLED = "login_throttled"  # too many failed logins at this account: wait
    REGISTER_TIMEOUT = "register_timeout"  # connected, but did not register in time; closed
    IDLE_TIMEOUT = "idle_timeout"  # sent nothing, not even a ping, for too long; closed
    RATE_LIMITED = "rate_limited"  # sending faster than allowed: read more slowly, none dropped
    SLOW_CONSUMER = "slow_consumer"  # not reading fast enough to keep up with the group; closed
    SERVER_SHUTDOWN = "server_shutdown"  # the router is stopping; closed after what was queued
    # Cluster mode: the shared store (Redis) is away and this register needs it; try again soon
    STORE_UNAVAILABLE = "store_unavailable"
    # OSC sent to the HTTP port: the reply names the OSC ports; closed
    WRONG_PORT = "wrong_port"


class RouterError(Exception):
    """The root of every exception the router raises on purpose."""


class RemoteError(RouterError):
    """Something a peer sent that the router refuses.

    `code` goes on the wire, `detail` is the human text (never a password), and `fatal` says
    whether the connection is closed once the reply has been sent.
    """

    def __init__(self, code: str, detail: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.fatal = fatal


# The exit status of a router that cannot run as configured (sysexits.h's EX_CONFIG): the
# supervisor of --workers does not start such a worker again.
EX_CONFIG = 78


class ClusterRefused(RouterError):
    """The cluster cannot be joined as configured (a wrong Redis password, a server that is not
    Redis, another node under the same name); the message says why and what to do."""
