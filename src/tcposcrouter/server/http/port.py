"""The HTTP port (55557 by default): OSC over WebSocket, the live dashboard, metrics, health and
the browser client, on aiohttp.

    /osc        OSC over WebSocket (server/http/websocket.py)
    /           the dashboard; /live is its WebSocket, which pushes a view once a second
    /client/    the browser client page (examples/browser/ in the repository)
    /metrics    Prometheus text format
    /healthz    200 while the router accepts connections ("ok", or "degraded" while a
                cluster's Redis or a worker is away), 503 while it shuts down

With --workers, each answers for the whole router (server/whole.py). aiohttp's access log is
off: a URL registration carries passwords in its query string, and no query string may reach a
log line (the router logs each connection itself, without it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path

from aiohttp import web

from ..running import RunningRouter
from ..sockets import format_peer
from ..whole import WholeRouter, merge_metrics
from . import metrics
from .door import Entrance, GuardedSite, HttpDoor
from .live import Dashboards
from .security_headers import add_security_headers
from .websocket import serve_osc

__all__ = ["HttpPort", "client_page_folder"]

log = logging.getLogger("tcposcrouter.server")

WEB = Path(__file__).resolve().parents[2] / "web"
# How long a stopping router lets aiohttp finish its handlers before it cancels them; the hub
# has closed every /osc connection by then.
HTTP_SHUTDOWN_SECONDS = 2.0


class _QuietAiohttp(logging.Filter):
    """aiohttp's "Error handling request" lines carry the refused request's text and a
    traceback. The door refuses what could carry a password before aiohttp reads it
    (server/http/head_check.py); whatever aiohttp still refuses is logged here as one debug line
    without the exception's words."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None or record.levelno >= logging.WARNING:
            error = record.exc_info[1] if record.exc_info else None
            record.msg = "aiohttp refused a request (%s)"
            record.args = (type(error).__name__ if error is not None else "no detail",)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_QUIET = _QuietAiohttp()


def client_page_folder() -> Path:
    """The browser client: inside the package when installed from a wheel, else the
    repository's examples/browser/ (a source checkout, an editable install)."""
    packaged = WEB / "client"
    if (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).resolve().parents[4] / "examples" / "browser"


class HttpPort:
    def __init__(self, server: RunningRouter) -> None:
        self._server = server
        self.dashboards = Dashboards(server)
        self._runner: web.AppRunner | None = None
        self._registry = metrics.registry_for(server.statistics)
        self.doors = Entrance(server)
        self.whole: WholeRouter | None = None  # with --workers: the others' figures too

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
        ssl_context: ssl.SSLContext | None = None,
        *,
        reuse_port: bool = False,
    ) -> list[str]:
        server_log = logging.getLogger("aiohttp.server")
        if _QUIET not in server_log.filters:
            server_log.addFilter(_QUIET)
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
        sites: list[GuardedSite] = []
        for host in hosts or [None]:  # type: ignore[list-item]
            site = GuardedSite(
                runner,
                self.doors,
                host,
                port,
                ssl_context=ssl_context,
                reuse_port=reuse_port,
            )
            await site.start()
            sites.append(site)
        handoff = self._server.handoff
        if handoff is not None:
            self.whole = self.dashboards.whole = WholeRouter(handoff, handoff.folder)
            await self.whole.start(self._own_figures())
        return [format_peer(sock.getsockname()) for site in sites for sock in site.sockets]

    def _own_figures(self) -> web.Application:
        """This worker's own figures, for the others (server/whole.py)."""
        app = web.Application(client_max_size=4096)
        app.router.add_get("/metrics", self._own_metrics)
        app.router.add_get("/healthz", self._own_health)
        app.router.add_get("/view", self._own_view)
        app.router.add_post("/group", self._own_group)
        return app

    def door(self) -> asyncio.Protocol | None:
        """A door for a connection the one port found speaking HTTP (server/one_port.py); None
        before the port has started."""
        runner = self._runner
        server = None if runner is None else runner.server
        return None if server is None else HttpDoor(self.doors, server())

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
        await self.dashboards.stop()
        if self.whole is not None:
            await self.whole.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the once-a-second push ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.dashboards.tick(now)

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
        answer = await self._own_health(request)
        if self.whole is None or answer.status != 200 or answer.text != "ok\n":
            return answer
        away = [str(i) for i, a in (await self.whole.ask_others("/healthz")).items() if a is None]
        if away:  # its groups' members are reconnecting to it as it starts again
            return web.Response(text=f"degraded: worker {', '.join(away)} not answering\n")
        return answer

    async def _own_health(self, request: web.Request) -> web.Response:
        if self._server.shutting_down:
            return web.Response(status=503, text="shutting down\n")
        cluster = self._server.cluster
        if cluster is not None and cluster.degraded:
            # Still routing among its own connections: not a reason to take it out.
            return web.Response(text="degraded: the cluster's Redis is away\n")
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = metrics.render(self._registry)
        if self.whole is not None:
            answers = (await self.whole.ask_others("/metrics")).values()
            body = merge_metrics([body, *(answer for answer in answers if answer is not None)])
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _own_metrics(self, request: web.Request) -> web.StreamResponse:
        body = metrics.render(self._registry)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _live(self, request: web.Request) -> web.StreamResponse:
        return await self.dashboards.serve(request, self.doors.of(request.transport))

    async def _own_view(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.dashboards.admin_view())

    async def _own_group(self, request: web.Request) -> web.StreamResponse:
        """Another worker's dashboard visitor asks for a group this worker owns."""
        asked = await request.json()
        dashboards = self.dashboards
        _, error = await dashboards.check_group(asked["address"], asked["name"], asked["password"])
        return web.json_response({"error": error})
