"""`/metrics`: the router's statistics in Prometheus's text format, through prometheus-client.

A collector reads `RouterServer.statistics()` at each scrape, so nothing is counted twice and
the hot path pays nothing for metrics. Names and labels are documented in docs/operating.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..running import ServerStatistics
from .dashboard import transport_of

__all__ = ["CONTENT_TYPE", "RouterCollector", "registry_for", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "tcposcrouter"


class RouterCollector(Collector):
    def __init__(self, statistics: Callable[[], ServerStatistics]) -> None:
        self._statistics = statistics

    def collect(self) -> Iterator[Metric]:
        server = self._statistics()
        hub = server.hub

        connections = GaugeMetricFamily(
            f"{PREFIX}_connections",
            "Open connections, by transport and framing (unknown: no byte received yet).",
            labels=["transport", "framing"],
        )
        for framing, count in sorted(hub.connections_by_framing.items()):
            connections.add_metric([transport_of(framing), framing], count)
        yield connections

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"{PREFIX}_{name}", text, value=value)

        def by_label(name: str, text: str, label: str, table: dict[str, int]) -> Metric:
            family = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=[label])
            for key, count in sorted(table.items()):
                family.add_metric([key], count)
            return family

        yield counter("connections_opened", "Connections accepted.", hub.connections_opened)
        yield counter("connections_closed", "Connections ended.", hub.connections_closed)
        yield counter("registrations", "Successful registers.", hub.registrations)
        yield by_label("refusals", "Registers refused, by error code.", "code", hub.refusals)
        yield by_label("errors", "Error replies and errors counted, by code.", "code", hub.errors)
        yield counter("packets_in", "OSC packets received.", hub.packets_in)
        yield counter("bytes_in", "Bytes received (framing included).", hub.bytes_in)
        yield counter(
            "deliveries",
            "Packets sent: one per receiver of a broadcast, private messages, replies.",
            hub.deliveries,
        )
        yield counter("bytes_out", "Bytes sent (framing included).", hub.bytes_out)
        yield counter("writes", "Writes to connections (coalesced deliveries).", hub.writes)
        yield by_label("drops", "Packets not routed, by cause.", "cause", hub.drops)
        yield counter(
            "slow_consumer_resets",
            "Connections reset because they did not read what their group sent.",
            hub.slow_consumer_resets,
        )
        yield counter(
            "rate_limit_pauses",
            "Reads after which a connection was paused for its rate limit (nothing dropped).",
            hub.rate_limit_pauses,
        )
        yield counter("password_checks", "Register passwords checked.", hub.password_checks)
        yield counter(
            "places_held",
            "Members' places held after their connection ended, for a resume (sessions).",
            hub.places_held,
        )
        yield counter("resumes", "Kept places taken back by a new connection.", hub.resumes)
        yield counter(
            "internal_errors",
            "Bugs caught on a connection (each closed it).",
            server.internal_errors,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_http_waiting",
            "HTTP connections that are not (yet) a WebSocket: page loads, scrapes, idle ones.",
            value=server.http_waiting,
        )
        yield counter(
            "http_evicted",
            "HTTP connections closed to make room at the HTTP port's caps.",
            server.http_evicted,
        )
        yield GaugeMetricFamily(f"{PREFIX}_groups", "Groups that exist.", value=hub.groups)
        yield GaugeMetricFamily(f"{PREFIX}_users", "Users in all groups.", value=hub.users)
        yield GaugeMetricFamily(
            f"{PREFIX}_uptime_seconds",
            "Seconds since the router started.",
            value=server.uptime_seconds,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_shutting_down",
            "1 while the router is shutting down.",
            value=server.shutting_down,
        )
        cluster = server.cluster
        if cluster is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_cluster_degraded",
                "1 while this node has lost the cluster's Redis (it routes locally only).",
                value=cluster.degraded,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_cluster_nodes",
                "Other nodes with users, as of the last resync.",
                value=cluster.nodes_seen,
            )
            yield counter(
                "cluster_published", "Messages published to other nodes.", cluster.published
            )
            yield counter(
                "cluster_received", "Messages received from other nodes.", cluster.received
            )
            yield counter(
                "cluster_unsent",
                "Packets for other nodes not sent because Redis was away.",
                cluster.unsent,
            )


def registry_for(statistics: Callable[[], ServerStatistics]) -> CollectorRegistry:
    """A registry of its own, so that nothing else a process registers shows up here."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(statistics))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
