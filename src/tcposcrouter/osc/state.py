"""The wire forms of a group's state (docs/protocol.md §13): a member's `/oscrouter/state…`
requests read, and the messages the router stores and sends — a stored message unwrapped
(`address args…`, as any client hears it) and wrapped again for a follower.

Pure code, on validated messages.
"""

from __future__ import annotations

from ..errors import ErrorCode, RemoteError
from .messages import CONTROL_PREFIX, osc_string, parse_arguments, read_string

__all__ = [
    "STATE",
    "STATE_ADDRESSES",
    "STATE_BEGIN",
    "STATE_CLEAR",
    "STATE_END",
    "STATE_FOLLOW",
    "bad_state",
    "read_state_clear",
    "read_state_follow",
    "state_begin",
    "state_clear_message",
    "state_end",
    "unwrap_state",
    "wrap_state",
]

STATE = "/oscrouter/state"
STATE_CLEAR = "/oscrouter/state/clear"
STATE_FOLLOW = "/oscrouter/state/follow"
STATE_ADDRESSES = frozenset({STATE, STATE_CLEAR, STATE_FOLLOW})
STATE_BEGIN = "/oscrouter/state/begin"
STATE_END = "/oscrouter/state/end"
_STATE = osc_string(STATE)
_STATE_END = osc_string(STATE_END) + osc_string(",")


def bad_state(detail: str) -> RemoteError:
    return RemoteError(ErrorCode.BAD_STATE, detail)


def _target(raw: bytes | str) -> str:
    """The OSC address a state message is about: an address a client may send."""
    address = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not address.startswith("/"):
        raise bad_state(f"the first argument must be an OSC address, not {address[:40]!r}")
    if address.encode().startswith(CONTROL_PREFIX):
        raise bad_state(f"{address[:60]} is the router's: state cannot be kept for it")
    return address


def unwrap_state(message: bytes) -> tuple[str, bytes] | None:
    """`/oscrouter/state ,s… address args…` as (address, the message `address args…` with the
    arguments byte for byte); None for `/oscrouter/state` with no argument (a request for the
    whole state)."""
    pos = read_string(message, 0)[1]
    if pos >= len(message):
        return None
    tags, pos = read_string(message, pos)
    if tags == b",":
        return None
    if not tags.startswith(b",s"):
        raise bad_state("/oscrouter/state takes an OSC address (s), then its arguments")
    raw, after = read_string(message, pos)
    address = _target(raw)
    unwrapped = osc_string(address) + osc_string("," + tags[2:].decode("ascii")) + message[after:]
    return address, unwrapped


def wrap_state(unwrapped: bytes) -> bytes:
    """The stored message `address args…` as a follower gets it: `/oscrouter/state ,s…
    address args…`."""
    address_raw, pos = read_string(unwrapped, 0)
    tags, after = read_string(unwrapped, pos)
    return (
        _STATE
        + osc_string(",s" + tags[1:].decode("ascii"))
        + osc_string(address_raw.decode("utf-8"))
        + unwrapped[after:]
    )


def read_state_clear(message: bytes) -> str:
    """The address of `/oscrouter/state/clear ,s address`."""
    arguments = parse_arguments(message)
    if len(arguments) != 1 or arguments[0].tag not in ("s", "S"):
        raise bad_state("/oscrouter/state/clear takes one OSC address (s)")
    value = arguments[0].value
    return _target(value if isinstance(value, (str, bytes)) else "")


def read_state_follow(message: bytes) -> bool:
    """Whether `/oscrouter/state/follow ,i 1` (or 0) asks to follow."""
    arguments = parse_arguments(message)
    value = arguments[0].value if len(arguments) == 1 else None
    if arguments and arguments[0].tag in ("i", "f", "d", "h") and value in (0, 1):
        return bool(value)
    raise bad_state("/oscrouter/state/follow takes 1 (follow) or 0 (stop)")


def state_begin(count: int) -> bytes:
    """`/oscrouter/state/begin ,i count`."""
    return osc_string(STATE_BEGIN) + osc_string(",i") + count.to_bytes(4, "big")


def state_end() -> bytes:
    """`/oscrouter/state/end`."""
    return _STATE_END


def state_clear_message(address: str) -> bytes:
    """`/oscrouter/state/clear ,s address`, as a follower hears a clear."""
    return osc_string(STATE_CLEAR) + osc_string(",s") + osc_string(address)
