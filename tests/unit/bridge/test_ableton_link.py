"""The Link session the bridge opens (bridge/ableton_link.py), with the real aalink: enabled,
at the tempo asked, with start/stop sync, and a clear word when aalink is missing. The bridge
between two networks is tests/interop/test_link_sessions.py's."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from support.peers import REQUIRE_PEERS
from tcposcrouter.bridge.ableton_link import LinkUnavailable, open_link_session


def test_the_session_is_opened_enabled_at_the_groups_tempo() -> None:
    if importlib.util.find_spec("aalink") is None:
        if REQUIRE_PEERS:
            pytest.fail("aalink is not installed; CI is set, so this is a failure, not a skip")
        pytest.skip("aalink is not installed")

    async def opened() -> tuple[bool, float, bool]:
        link = open_link_session(96.0)
        try:
            return link.enabled, link.tempo, link.start_stop_sync_enabled
        finally:
            link.enabled = False

    enabled, tempo, start_stop = asyncio.run(opened())
    assert enabled and start_stop and tempo == pytest.approx(96.0)


def test_without_aalink_the_bridge_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aalink", None)  # what Python does for a module not there
    with pytest.raises(LinkUnavailable, match=r"pip install 'tcposcrouter\[link\]'"):
        open_link_session(120.0)
