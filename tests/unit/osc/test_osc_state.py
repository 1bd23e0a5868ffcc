"""The wire forms of a group's state (osc/state.py): a set unwrapped byte for byte, wrapped
again for a follower, and the requests that are refused."""

from __future__ import annotations

import pytest
from pythonosc.osc_message import OscMessage

from support.osc import msg
from tcposcrouter.errors import RemoteError
from tcposcrouter.osc.state import (
    read_state_clear,
    read_state_follow,
    state_begin,
    state_clear_message,
    state_end,
    unwrap_state,
    wrap_state,
)


def test_a_set_is_unwrapped_byte_for_byte_and_wrapped_back() -> None:
    blob = bytes(range(7))
    wrapped = msg("/oscrouter/state", "/mixer/fader/1", 0.75, "dry", blob)
    address, stored = unwrap_state(wrapped) or ("", b"")
    assert address == "/mixer/fader/1"
    assert stored == msg("/mixer/fader/1", 0.75, "dry", blob)
    assert wrap_state(stored) == wrapped


def test_a_message_without_arguments_is_kept_with_a_bare_comma() -> None:
    address, stored = unwrap_state(msg("/oscrouter/state", "/scene/reset")) or ("", b"")
    assert (address, stored) == ("/scene/reset", msg("/scene/reset"))
    assert OscMessage(stored).params == []


def test_no_argument_asks_for_the_whole_state() -> None:
    assert unwrap_state(msg("/oscrouter/state")) is None


@pytest.mark.parametrize(
    "message",
    [
        msg("/oscrouter/state", 1, 2),  # no address first
        msg("/oscrouter/state", "no-slash", 1),
        msg("/oscrouter/state", "/oscrouter/userlist", "eve"),  # the router's own
    ],
)
def test_what_is_not_a_state_set_is_bad_state(message: bytes) -> None:
    with pytest.raises(RemoteError) as refused:
        unwrap_state(message)
    assert refused.value.code == "bad_state" and not refused.value.fatal


def test_clear_follow_and_the_frame_of_a_whole_state() -> None:
    assert read_state_clear(msg("/oscrouter/state/clear", "/a")) == "/a"
    with pytest.raises(RemoteError):
        read_state_clear(msg("/oscrouter/state/clear"))
    assert read_state_follow(msg("/oscrouter/state/follow", 1)) is True
    assert read_state_follow(msg("/oscrouter/state/follow", 0.0)) is False  # Pd's float
    with pytest.raises(RemoteError):
        read_state_follow(msg("/oscrouter/state/follow", 2))
    assert state_begin(3) == msg("/oscrouter/state/begin", 3)
    assert state_end() == msg("/oscrouter/state/end")
    assert state_clear_message("/a") == msg("/oscrouter/state/clear", "/a")
