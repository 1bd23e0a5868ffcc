"""`--workers N`: /metrics, /healthz and the dashboard show the whole router, whichever worker
the kernel gives the request to.

Each worker answers its own figures on a Unix socket of its own (`worker-I.http` in the
workers' folder, this user's only): `/metrics`, `/healthz`, `/view` (its dashboard view with
every group page) and `/group` (a dashboard's group password, checked and throttled by the
worker that owns the group). The worker that took a request asks the others and adds their
answers to its own: counters and gauges summed (uptime and the on/off gauges: the largest),
group pages side by side, since each group lives in one worker. A worker that does not answer
within a second (being started again) is left out, and /healthz says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from .handoff import Handoff

__all__ = ["WholeRouter", "merge_metrics", "merge_views", "view_for"]

# How long a worker waits for another's figures: a live one answers in milliseconds.
ASK_SECONDS = 1.0
# Gauges that say "at least one worker": the largest is the router's, not the sum.
LARGEST = frozenset(
    {
        "tcposcrouter_uptime_seconds",
        "tcposcrouter_shutting_down",
        "tcposcrouter_cluster_degraded",
        "tcposcrouter_cluster_nodes",
    }
)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_metrics(texts: Sequence[bytes]) -> bytes:
    """One Prometheus text of the router from each worker's: each sample summed over the
    workers (the `LARGEST` gauges: the largest), and `tcposcrouter_workers`, how many
    answered."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type
                )
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = sample.value
                elif family.name in LARGEST:
                    values[key] = max(values[key], sample.value)
                else:
                    values[key] += sample.value
    for (family_name, sample_name, labels), value in values.items():
        families[family_name].add_sample(sample_name, dict(labels), value)
    workers = Metric(
        "tcposcrouter_workers", "Worker processes whose figures are in this answer.", "gauge"
    )
    workers.add_sample("tcposcrouter_workers", {}, len(texts))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), workers]))
    return generate_latest(registry)


def _add(into: dict[str, Any], key: str, value: Any) -> None:
    if key not in into:
        into[key] = value
    elif key == "uptime_seconds":
        into[key] = max(into[key], value)
    elif key == "history":  # per second, the latest last: added from the end
        older, newer = sorted((into[key], value), key=len)
        into[key] = [list(x) for x in newer]
        for back, sample in enumerate(reversed(older), 1):
            into[key][-back] = [a + b for a, b in zip(into[key][-back], sample, strict=True)]
    elif isinstance(value, dict):
        table = dict(into[key])
        for name, count in value.items():
            table[name] = table.get(name, 0) + count
        into[key] = table
    elif isinstance(value, list):
        into[key] = [*into[key], *value]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        into[key] = round(into[key] + value, 1)


def merge_views(views: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The dashboard's admin view of the router from each worker's: counts and rates summed,
    the per-second history added second by second, every group page."""
    merged: dict[str, Any] = {}
    for view in views:
        for key, value in view.items():
            _add(merged, key, value)
    return merged


def view_for(merged: dict[str, Any], access: str, group: str | None) -> dict[str, Any]:
    """What a dashboard visitor with `access` (to `group`, for a member) sees of the merged
    admin view: everything, or the counts and that group's page without peer addresses, or
    the counts only. A member's group that is gone leaves the counts, with access "public"."""
    view = dict(merged, access=access, group_pages=[])
    if access == "admin":
        view["group_pages"] = merged["group_pages"]
    elif access == "member":
        pages = [page for page in merged["group_pages"] if page["name"] == group]
        view["group_pages"] = [_without_addresses(page) for page in pages]
        if not pages:
            view["access"] = "public"
    return view


def _without_addresses(page: dict[str, Any]) -> dict[str, Any]:
    users = []
    for user in page["users"]:
        connections = [
            {key: value for key, value in connection.items() if key != "peer"}
            for connection in user["connections"]
        ]
        users.append({**user, "connections": connections})
    return {**page, "users": users}


class WholeRouter:
    """This worker's side of the whole router's figures: its own on its Unix socket, the
    others' asked for."""

    def __init__(self, handoff: Handoff, folder: Path) -> None:
        self._handoff = handoff
        self._folder = folder
        self._runner: web.AppRunner | None = None
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def path(self, index: int) -> Path:
        return self._folder / f"worker-{index}.http"

    def others(self) -> list[int]:
        here = self._handoff.index
        return [index for index in range(1, self._handoff.count + 1) if index != here]

    async def start(self, app: web.Application) -> None:
        """Answer this worker's own figures with `app` on its Unix socket."""
        path = self.path(self._handoff.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by this worker's previous life
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(path)).start()
        os.chmod(path, 0o600)

    async def stop(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def ask(self, index: int, path: str, body: Any = None) -> bytes | None:
        """Worker `index`'s answer to `path` (a POST of `body` as JSON if given); None if it
        does not answer in time."""
        session = self._sessions.get(index)
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(path=str(self.path(index)))
            session = self._sessions[index] = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=ASK_SECONDS)
            )
        try:
            if body is None:
                request = session.get(f"http://worker{path}")
            else:
                request = session.post(f"http://worker{path}", json=body)
            async with request as response:
                if response.status != 200:
                    return None
                return await response.read()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return None

    async def ask_others(self, path: str) -> dict[int, bytes | None]:
        """Every other worker's answer to `path`, None for those that did not answer."""
        others = self.others()
        answers = await asyncio.gather(*(self.ask(index, path) for index in others))
        return dict(zip(others, answers, strict=True))

    def elsewhere(self, group: str) -> bool:
        """Whether another worker owns `group`."""
        return self._handoff.elsewhere(group) is not None

    async def check_group(self, address: str, name: str, password: str) -> str | None:
        """A dashboard visitor's group password, checked (and throttled) by the worker that
        owns the group: None if right, else why not."""
        owner = self._handoff.owner(name)
        asked = {"address": address, "name": name, "password": password}
        answer = await self.ask(owner, "/group", asked)
        if answer is None:
            return "the group's worker is not answering: try again in a moment"
        error = json.loads(answer).get("error")
        return None if error is None else str(error)

    async def views(self) -> list[dict[str, Any]]:
        """The other workers' dashboard views (admin, with every group page)."""
        views = []
        for answer in (await self.ask_others("/view")).values():
            if answer is not None:
                with contextlib.suppress(ValueError):
                    views.append(json.loads(answer))
        return views
