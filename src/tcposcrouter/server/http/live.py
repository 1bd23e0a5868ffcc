"""The live dashboard's `/live` WebSocket: who is watching, what each proved (the admin token,
a group's password, or nothing), and the view pushed to each once a second (docs/operating.md).

With --workers, the views are the whole router's (server/whole.py), and a group's password is
checked by the worker that owns the group.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from aiohttp import WSMsgType, web

from ...core.directory import Group, Member
from ...core.statistics import HubStatistics
from ..running import RunningRouter
from ..sockets import round_trip_ms
from ..whole import WholeRouter, merge_views, view_for
from .dashboard import Traffic
from .door import HttpDoor
from .page_login import PageLogins
from .websocket import client_address

__all__ = ["Dashboards"]

# A dashboard viewer's messages are a token or a group's name and password: a few hundred
# bytes. Anything bigger is not a dashboard.
VIEWER_MESSAGE_LIMIT = 4096
# Open dashboards: each costs a view a second. A whole class watching its own group is a few
# dozen from one address; more than this from one address, or in all, is not people watching.
MAX_VIEWERS = 500
MAX_VIEWERS_PER_ADDRESS = 50


class _Viewer:
    """One open dashboard, and what its visitor proved."""

    __slots__ = ("access", "address", "group", "group_name", "sending", "ws")

    def __init__(self, ws: web.WebSocketResponse, address: str) -> None:
        self.ws = ws
        self.address = address
        self.access = "public"
        self.group: Group | None = None  # member access: this group object, not just its name
        self.group_name: str | None = None  # with --workers: the group, in whichever worker
        self.sending: asyncio.Future[None] | None = None


class Dashboards:
    """Every open dashboard of this router (of this worker, with --workers)."""

    def __init__(self, server: RunningRouter) -> None:
        self._server = server
        self._logins = PageLogins(server.hub.registers.throttle, server.hub.directory)
        self.traffic = Traffic()
        self._viewers: set[_Viewer] = set()
        self._texts: dict[object, str] = {}  # this second's views, by access or group
        self.whole: WholeRouter | None = None  # with --workers: the others' views too

    async def stop(self) -> None:
        for viewer in list(self._viewers):
            await viewer.ws.close()

    def tick(self, now: float) -> None:
        hub = self._server.hub
        statistics = hub.statistics()
        # With --workers, another worker's dashboards ask for this one's view at any time.
        watched = bool(self._viewers) or self.whole is not None
        self.traffic.sample(statistics, hub.directory, now, watched)
        self._texts.clear()  # a new second
        if self.whole is None:
            self._push(self._viewers, statistics)
        elif self._viewers:
            pushing = asyncio.ensure_future(self._push_whole(self._viewers, statistics))
            pushing.add_done_callback(_forget_failure)

    def admin_view(self, statistics: HubStatistics | None = None) -> dict[str, Any]:
        """The admin's view of this router (with --workers: of this worker); `statistics`:
        the hub's snapshot of this moment, if the caller has taken it."""
        server = self._server
        return self.traffic.admin_view(
            server.hub.statistics() if statistics is None else statistics,
            server.hub.directory,
            server.now() - server.started_at,
            self._round_trip,
        )

    async def _push_whole(
        self, viewers: set[_Viewer], statistics: HubStatistics | None = None
    ) -> None:
        """With --workers: each viewer's view of the whole router, from every worker's."""
        assert self.whole is not None
        merged = merge_views([self.admin_view(statistics), *await self.whole.views()])
        for viewer in list(viewers):
            if viewer.sending is not None and not viewer.sending.done():
                continue
            view = view_for(merged, viewer.access, viewer.group_name)
            if view["access"] != viewer.access:  # that group is gone
                viewer.access, viewer.group_name = "public", None
            text = json.dumps({"type": "view", **view})
            viewer.sending = sending = asyncio.ensure_future(viewer.ws.send_str(text))
            sending.add_done_callback(_forget_failure)

    def _push(self, viewers: set[_Viewer], statistics: HubStatistics | None = None) -> None:
        """Send each viewer its view; viewers with the same access share one JSON text, made
        once a second (the tick starts a new one): a dashboard opened within the second is sent
        this second's, so fifty dashboards opened at once cost one view, not fifty.
        `statistics`: the hub's snapshot of this moment, if the caller has taken it."""
        if not viewers:
            return
        server = self._server
        hub = server.hub
        texts = self._texts
        for viewer in list(viewers):
            if viewer.sending is not None and not viewer.sending.done():
                continue  # a dashboard that has not taken the last view skips this one
            group = viewer.group
            if group is not None and hub.directory.groups.get(group.name) is not group:
                viewer.access, viewer.group, viewer.group_name = "public", None, None  # gone
                group = None
            key: object = group if group is not None else viewer.access
            text = texts.get(key)
            if text is None:
                if statistics is None:
                    statistics = hub.statistics()
                uptime = server.now() - server.started_at
                if viewer.access == "admin":
                    view = self.traffic.admin_view(
                        statistics, hub.directory, uptime, self._round_trip
                    )
                elif group is not None:
                    view = self.traffic.member_view(statistics, group, uptime, self._round_trip)
                else:
                    view = self.traffic.public_view(statistics, uptime)
                text = texts[key] = json.dumps({"type": "view", **view})
            viewer.sending = sending = asyncio.ensure_future(viewer.ws.send_str(text))
            sending.add_done_callback(_forget_failure)

    def _round_trip(self, member: Member) -> tuple[float, float] | None:
        connection = self._server.connections.of(member.id)
        return None if connection is None else round_trip_ms(connection.socket())

    async def serve(self, request: web.Request, door: HttpDoor | None) -> web.StreamResponse:
        """`/live`: one dashboard, from its handshake (seen by its `door`) to its close."""
        _, address = client_address(request, self._server.config.trusted_proxies)
        from_there = sum(1 for viewer in self._viewers if viewer.address == address)
        if len(self._viewers) >= MAX_VIEWERS or from_there >= MAX_VIEWERS_PER_ADDRESS:
            return web.Response(status=503, text="too many dashboards open; try again later\n")
        # No permessage-deflate: a viewer's few small messages gain nothing from it, and a
        # compressed message's size is only known once it has been inflated.
        ws = web.WebSocketResponse(max_msg_size=VIEWER_MESSAGE_LIMIT, heartbeat=30, compress=False)
        await ws.prepare(request)
        if door is None or not door.upgraded(None):
            await ws.close()  # a handshake the door did not see: its frames cannot be read
            return ws
        viewer = _Viewer(ws, address)
        self._viewers.add(viewer)
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                try:
                    asked = json.loads(message.data)
                except ValueError:
                    asked = None
                if not isinstance(asked, dict):
                    await ws.send_str(json.dumps({"type": "access", "error": "not JSON"}))
                    continue
                await self._grant(viewer, asked, address)
        finally:
            self._viewers.discard(viewer)
        return ws

    async def _grant(self, viewer: _Viewer, asked: dict[str, Any], address: str) -> None:
        """What a dashboard visitor asked to see: everything (the admin token), one group (its
        name and password), or counts only."""
        error = None
        token = asked.get("token")
        group_name = asked.get("group")
        viewer.access, viewer.group, viewer.group_name = "public", None, None
        if isinstance(token, str) and token:
            error = self._check_token(address, token)
            if error is None:
                viewer.access = "admin"
        elif isinstance(group_name, str) and group_name:
            password = asked.get("password")
            password = password if isinstance(password, str) else ""
            whole = self.whole
            if whole is not None and whole.elsewhere(group_name):  # its own worker checks
                error = await whole.check_group(address, group_name, password)
            else:
                viewer.group, error = await self.check_group(address, group_name, password)
            if error is None:
                viewer.access, viewer.group_name = "member", group_name
        reply = {"type": "access", "access": viewer.access, "error": error}
        if viewer.group_name is not None:
            reply["group"] = viewer.group_name
        await viewer.ws.send_str(json.dumps(reply))
        viewer.sending = None
        if self.whole is None:
            self._push({viewer})  # at once, not at the next tick
        else:
            await self._push_whole({viewer})

    def _check_token(self, address: str, token: str) -> str | None:
        """None if `token` is the admin token, else why not; compared in constant time and
        throttled per address like a login."""
        server = self._server
        pages = self._logins
        wait = pages.claim_admin(address, server.now())
        if wait:
            return f"too many wrong tokens: try again in {max(1.0, wait):.0f} s"
        right = hmac.compare_digest(token.encode(), server.admin_token.encode())
        pages.admin_checked(address, right, server.now())
        return None if right else "wrong admin token"

    async def check_group(
        self, address: str, name: str, password: str
    ) -> tuple[Group | None, str | None]:
        """(the group `name`, None) if `password` is its password, else (None, why not);
        checked in a worker thread and throttled like a register."""
        server = self._server
        hub = server.hub
        wrong = "wrong group name or password"
        pages = self._logins
        wait, expected = pages.claim(address, name, server.now())
        if wait:
            return None, f"too many wrong passwords: try again in {wait:.0f} s"
        if expected is None:
            return None, wrong
        right = await server.check_password(expected, password)
        pages.checked(address, name, right, server.now())
        group = hub.directory.groups.get(name)
        if not right or group is None or group.password is not expected:
            return None, wrong
        return group, None


def _forget_failure(sent: asyncio.Future[None]) -> None:
    """A dashboard that went away while a view was on its way: nothing to do (its handler ends
    and forgets it), but the failure must be taken, or asyncio logs it as never retrieved."""
    if not sent.cancelled():
        sent.exception()
