"""The HTTP port (55557 by default): OSC over WebSocket, the live dashboard, metrics, health and
the browser client, on aiohttp.

    /osc        OSC over WebSocket (server/websocket.py)
    /           the dashboard; /live is its WebSocket, which pushes a view once a second
    /client/    the browser client page (examples/browser/ in the repository)
    /metrics    Prometheus text format
    /healthz    200 while the router accepts connections ("ok", or in a cluster "degraded"
                while Redis is away), 503 while it shuts down

aiohttp's access log is off: a URL registration carries passwords in its query string, and no
query string may reach a log line (the router logs each connection itself, without it).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ..core.directory import Group, Member
from ..core.statistics import HubStatistics
from . import metrics
from .dashboard import Traffic
from .http_door import HttpDoor, HttpDoors, HttpSite
from .running import RunningRouter
from .sockets import format_peer
from .tcpinfo import round_trip_ms
from .web_security import add_security_headers
from .websocket import client_address, serve_osc

__all__ = ["HttpSide", "client_page_folder"]

log = logging.getLogger("tcposcrouter.server")

WEB = Path(__file__).resolve().parent.parent / "web"
# A dashboard viewer's messages are a token or a group's name and password: a few hundred
# bytes. Anything bigger is not a dashboard.
VIEWER_MESSAGE_LIMIT = 4096
# Open dashboards: each costs a view a second. A whole class watching its own group is a few
# dozen from one address; more than this from one address, or in all, is not people watching.
MAX_VIEWERS = 500
MAX_VIEWERS_PER_ADDRESS = 50
# How long a stopping router lets aiohttp finish its handlers before it cancels them; the hub
# has closed every /osc connection by then.
HTTP_SHUTDOWN_SECONDS = 2.0


def client_page_folder() -> Path:
    """The browser client: inside the package when installed from a wheel, else the
    repository's examples/browser/ (a source checkout, an editable install)."""
    packaged = WEB / "client"
    if (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "examples" / "browser"


class _Viewer:
    """One open dashboard, and what its visitor proved."""

    __slots__ = ("access", "address", "group", "sending", "ws")

    def __init__(self, ws: web.WebSocketResponse, address: str) -> None:
        self.ws = ws
        self.address = address
        self.access = "public"
        self.group: Group | None = None  # member access: this group object, not just its name
        self.sending: asyncio.Future[None] | None = None


class HttpSide:
    def __init__(self, server: RunningRouter) -> None:
        self._server = server
        self.traffic = Traffic()
        self._viewers: set[_Viewer] = set()
        self._runner: web.AppRunner | None = None
        self._registry = metrics.registry_for(server.statistics)
        self.doors = HttpDoors(server)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.on_response_prepare.append(add_security_headers)
        app.router.add_get("/", self._dashboard_page)
        app.router.add_get("/live", self._live)
        app.router.add_get("/osc", self._osc)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/client", self._client_redirect)
        app.router.add_get("/client/", self._client_page)
        app.router.add_static("/static/", WEB / "static")
        app.router.add_static("/client/", client_page_folder())
        return app

    async def start(
        self,
        hosts: list[str] | None,
        port: int,
        backlog: int,
        ssl_context: ssl.SSLContext | None = None,
        *,
        reuse_port: bool = False,
    ) -> list[str]:
        runner = self._runner = web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=HTTP_SHUTDOWN_SECONDS,
            # aiohttp's default keeps a connection that sends no request for an hour: a
            # scanner's or a broken client's would pile up. A browser asks at once.
            keepalive_timeout=self._server.config.limits.register_timeout or 10.0,
        )
        await runner.setup()
        for host in hosts or [None]:  # type: ignore[list-item]
            site = HttpSite(
                runner,
                self.doors,
                host,
                port,
                backlog=backlog,
                ssl_context=ssl_context,
                reuse_port=reuse_port,
            )
            await site.start()
        return [format_peer(a) for a in runner.addresses]

    async def adopt(self, sock: socket.socket, data: bytes) -> None:
        """A connection another worker handed here (with --workers: a WebSocket handshake
        for a group this worker owns), with what was read of it, not answered yet."""
        runner = self._runner
        server = None if runner is None else runner.server
        if server is None:
            sock.close()
            return
        doors = self.doors
        try:
            _, door = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: HttpDoor(doors, server(), handed_in=True), sock
            )
        except OSError:  # the client left meanwhile
            sock.close()
            return
        door.data_received(data)

    async def stop(self) -> None:
        for viewer in list(self._viewers):
            await viewer.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the once-a-second push ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        hub = self._server.hub
        statistics = hub.statistics()
        self.traffic.sample(statistics, hub.directory, now)
        self._push(self._viewers, statistics)

    def _push(self, viewers: set[_Viewer], statistics: HubStatistics | None = None) -> None:
        """Send each viewer its view; viewers with the same access share one JSON text.
        `statistics`: the hub's snapshot of this moment, if the caller has taken it."""
        if not viewers:
            return
        server = self._server
        hub = server.hub
        if statistics is None:
            statistics = hub.statistics()
        uptime = server.now() - server.started_at
        texts: dict[object, str] = {}
        for viewer in list(viewers):
            if viewer.sending is not None and not viewer.sending.done():
                continue  # a dashboard that has not taken the last view skips this one
            group = viewer.group
            if group is not None and hub.directory.groups.get(group.name) is not group:
                viewer.access, viewer.group = "public", None  # that group is gone
                group = None
            key: object = group if group is not None else viewer.access
            text = texts.get(key)
            if text is None:
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

    # -- handlers ------------------------------------------------------------------------------

    async def _dashboard_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "dashboard.html")

    async def _client_redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/client/")  # relative links in the page then resolve

    async def _client_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(client_page_folder() / "index.html")

    async def _osc(self, request: web.Request) -> web.StreamResponse:
        return await serve_osc(self._server, request, self.doors.of(request.transport))

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        if self._server.shutting_down:
            return web.Response(status=503, text="shutting down\n")
        cluster = self._server.cluster
        if cluster is not None and cluster.degraded:
            # Still routing among its own connections: not a reason to take it out.
            return web.Response(text="degraded: the cluster's Redis is away\n")
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = metrics.render(self._registry)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _live(self, request: web.Request) -> web.StreamResponse:
        _, address = client_address(request, self._server.config.trusted_proxies)
        from_there = sum(1 for viewer in self._viewers if viewer.address == address)
        if len(self._viewers) >= MAX_VIEWERS or from_there >= MAX_VIEWERS_PER_ADDRESS:
            return web.Response(status=503, text="too many dashboards open; try again later\n")
        # No permessage-deflate: a viewer's few small messages gain nothing from it, and a
        # compressed message's size is only known once it has been inflated.
        ws = web.WebSocketResponse(max_msg_size=VIEWER_MESSAGE_LIMIT, heartbeat=30, compress=False)
        await ws.prepare(request)
        door = self.doors.of(request.transport)
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
        viewer.access, viewer.group = "public", None
        if isinstance(token, str) and token:
            error = self._check_token(address, token)
            if error is None:
                viewer.access = "admin"
        elif isinstance(group_name, str) and group_name:
            password = asked.get("password")
            group, error = await self._check_group(
                address, group_name, password if isinstance(password, str) else ""
            )
            if group is not None:
                viewer.access, viewer.group = "member", group
        reply = {"type": "access", "access": viewer.access, "error": error}
        if viewer.group is not None:
            reply["group"] = viewer.group.name
        await viewer.ws.send_str(json.dumps(reply))
        viewer.sending = None
        self._push({viewer})  # at once, not at the next tick

    def _check_token(self, address: str, token: str) -> str | None:
        """None if `token` is the admin token, else why not; compared in constant time and
        throttled per address like a login."""
        server = self._server
        pages = server.hub.login.group_pages
        wait = pages.claim_admin(address, server.now())
        if wait:
            return f"too many wrong tokens: try again in {max(1.0, wait):.0f} s"
        right = hmac.compare_digest(token.encode(), server.admin_token.encode())
        pages.admin_checked(address, right, server.now())
        return None if right else "wrong admin token"

    async def _check_group(
        self, address: str, name: str, password: str
    ) -> tuple[Group | None, str | None]:
        """(the group `name`, None) if `password` is its password, else (None, why not);
        checked in a worker thread and throttled like a register."""
        server = self._server
        hub = server.hub
        wrong = "wrong group name or password"
        pages = hub.login.group_pages
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
