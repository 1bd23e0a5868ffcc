"""`tcposcrouter-client link`: a local Ableton Link session (Ableton Live, Bitwig,
SuperCollider's LinkClock, Pd's abl_link~, phone apps) kept in step with the group's tempo,
both ways, across the internet.

    Link peers on this network ◀──Link──▶ the bridge ◀──group tempo──▶ router ◀──▶ other members

The group's timeline is the authority: the bridge sets Link's tempo to the group's, its
quantum to the group's bar length `Q`, and, every `ALIGN_SECONDS`, moves Link's beat to the
group's beat (through the time service's offset) when it has strayed by more than
`PHASE_TOLERANCE_MS`. So two Link sessions on two networks bridged into one group play the same
beats and bars. A local peer that changes the tempo or starts or stops the transport changes
the group's (now); the group tells every member, and every bridged Link session follows.

Needs aalink (`pip install 'tcposcrouter[link]'`), a binding of Ableton's Link library.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from typing import Any, Protocol

from ..client.aio import NotConnected, RouterClient
from ..client.protocol import TempoLine
from .bridge import BridgeConfig
from .link_phase import PHASE_TOLERANCE_MS, phase_error_ms, tempo_differs

__all__ = ["ALIGN_SECONDS", "LinkBridge", "LinkUnavailable"]

log = logging.getLogger("tcposcrouter.bridge")

# How often Link's phase is compared with the group's: Link peers themselves converge within
# tens of ms; twenty looks a second keep a stray short.
ALIGN_SECONDS = 0.05
# A peer that joins the Link session brings its own tempo and transport, which the session may
# take for a moment, just before or after the peer count changes. So a change from Link is
# looked at again this much later: if the peers changed within JOIN_SECONDS of it, it was a
# join, and Link is given the group's tempo back; else a musician changed it, and the group's
# changes. A musician's change reaches the group this much later.
SETTLE_SECONDS = 0.4
JOIN_SECONDS = 1.0
# A tempo on Link other than the group's that outlasts this (a change the group refused) is
# replaced by the group's.
STRAY_TEMPO_SECONDS = 3.0


class LinkUnavailable(RuntimeError):
    """aalink is not installed."""


class LinkSession(Protocol):
    """What the bridge uses of aalink's `Link`."""

    enabled: bool
    tempo: float
    quantum: float
    playing: bool
    start_stop_sync_enabled: bool

    @property
    def beat(self) -> float: ...

    @property
    def num_peers(self) -> int: ...

    def force_beat(self, beat: float) -> None: ...

    def set_tempo_callback(self, callback: Any) -> None: ...

    def set_start_stop_callback(self, callback: Any) -> None: ...

    def set_num_peers_callback(self, callback: Any) -> None: ...


def open_link_session(bpm: float) -> LinkSession:
    """A Link session of this machine's network, enabled, with start/stop sync."""
    try:
        aalink = importlib.import_module("aalink")
    except ImportError as exc:
        raise LinkUnavailable(
            "Ableton Link needs aalink: pip install 'tcposcrouter[link]'"
        ) from exc
    link: LinkSession = aalink.Link(bpm)
    link.enabled = True
    link.start_stop_sync_enabled = True
    return link


class LinkBridge:
    def __init__(self, config: BridgeConfig) -> None:
        self._config = config
        self.client: RouterClient | None = None
        self.link: LinkSession | None = None
        self.moves = 0  # times Link's beat was moved to the group's
        self._peers_changed = -JOIN_SECONDS  # when a Link peer last came or went (monotonic)
        self._tempo_apart_since: float | None = None  # Link's tempo is not the group's

    async def run(self) -> None:
        """Join, open the Link session and keep the two in step until cancelled."""
        config = self._config
        client = self.client = await RouterClient.connect(
            config.server, config.user, config.password, config.group, config.group_password,
            on_tempo=self._group_told,
        )  # fmt: skip
        try:
            await client.sync_time()
            await asyncio.wait_for(client.tempo_told.wait(), 5.0)
            line = client.group_clock.line_at(time.time())
            link = self.link = open_link_session(line.bpm)
            # (aalink calls these on this event loop)
            link.set_tempo_callback(self._link_tempo)
            link.set_start_stop_callback(self._link_playing)
            link.set_num_peers_callback(self._link_peers)
            self._follow(line)
            log.warning("Link session bridged to %s in %s", config.server, config.group)
            while True:
                self._align()
                await asyncio.sleep(ALIGN_SECONDS)
        finally:
            if self.link is not None:
                self.link.enabled = False
            await client.close()

    # -- the group to Link --------------------------------------------------------------------

    def _group_told(self, line: TempoLine) -> None:
        if self.link is not None and self.client is not None:
            self._follow(self.client.group_clock.line_at(time.time()))

    def _follow(self, line: TempoLine) -> None:
        """Link takes the tempo, bar length and transport of the line in force."""
        link = self.link
        assert link is not None
        link.quantum = float(line.quantum)
        if tempo_differs(link.tempo, line.bpm):
            link.tempo = line.bpm
        if link.playing != bool(line.playing):
            link.playing = bool(line.playing)

    def _align(self) -> None:
        """Move Link's beat to the group's when it has strayed (a change told ahead takes
        effect here at its beat, as the group clock reads it). While Link's tempo is not the
        group's (a change on its way to the group), its phase is left alone."""
        client, link = self.client, self.link
        assert client is not None and link is not None
        now = time.time()
        line = client.group_clock.line_at(now)
        link.quantum = float(line.quantum)
        if tempo_differs(link.tempo, line.bpm):
            since = self._tempo_apart_since
            if since is None:
                self._tempo_apart_since = time.monotonic()
            elif time.monotonic() - since > STRAY_TEMPO_SECONDS:
                self._follow(line)
            return
        self._tempo_apart_since = None
        before = time.time()
        link_beat = link.beat
        after = time.time()
        group_beat = client.beat((before + after) / 2)
        error = phase_error_ms(link_beat, group_beat, float(line.quantum), line.bpm)
        if abs(error) > PHASE_TOLERANCE_MS:
            link.force_beat(client.beat(time.time()))
            self.moves += 1
            log.info("Link moved to the group's beat: it was %+.2f ms off", error)

    # -- Link to the group --------------------------------------------------------------------

    def _link_peers(self, count: int) -> None:
        self._peers_changed = time.monotonic()
        log.info("%d other Link peers on this network", count)

    def _link_tempo(self, bpm: float) -> None:
        self._from_link(bpm, None)

    def _link_playing(self, playing: bool) -> None:
        self._from_link(None, playing)

    def _from_link(self, bpm: float | None, playing: bool | None) -> None:
        """Link's tempo or transport changed: decided SETTLE_SECONDS later."""
        client = self.client
        if client is None or client.tempo is None or self.link is None:
            return
        line = client.group_clock.line_at(time.time())
        if bpm is not None and not tempo_differs(bpm, line.bpm):
            return
        if playing is not None and playing == bool(line.playing):
            return
        changed = time.monotonic()
        asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._settle, bpm, playing, changed)

    def _settle(self, bpm: float | None, playing: bool | None, changed: float) -> None:
        client = self.client
        if client is None or self.link is None:
            return
        line = client.group_clock.line_at(time.time())
        if abs(self._peers_changed - changed) < JOIN_SECONDS:
            log.info("a Link peer joined with its own tempo: Link takes the group's back")
            self._follow(line)
        elif bpm is not None and tempo_differs(bpm, line.bpm):
            # Link keeps a tempo as microseconds a beat (130 bpm comes back as 130.00013):
            # the group gets what the musician set.
            bpm = round(bpm, 3)
            log.warning("a Link peer set %.3f bpm: changing the group's tempo", bpm)
            self._to_group(client.set_tempo(bpm))
        elif playing is not None and playing != bool(line.playing):
            log.warning("a Link peer %s the transport", "started" if playing else "stopped")
            self._to_group(client.set_playing(playing))

    def _to_group(self, change: Any) -> None:
        task = asyncio.ensure_future(change)
        task.add_done_callback(_report)


def _report(task: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        error = task.exception()
        if error is not None and not isinstance(error, NotConnected):
            log.warning("could not change the group's tempo: %s", error)
