"""The whole router's figures from each worker's (server/whole.py): what an operator's
Prometheus and dashboard see with --workers."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tcposcrouter.server.whole import merge_metrics, merge_views, view_for

WORKER_1 = b"""# HELP tcposcrouter_users Users in all groups.
# TYPE tcposcrouter_users gauge
tcposcrouter_users 8.0
# HELP tcposcrouter_deliveries Packets sent.
# TYPE tcposcrouter_deliveries counter
tcposcrouter_deliveries_total 1000.0
# HELP tcposcrouter_errors Error replies.
# TYPE tcposcrouter_errors counter
tcposcrouter_errors_total{code="rate_limited"} 2.0
# HELP tcposcrouter_uptime_seconds Seconds since the router started.
# TYPE tcposcrouter_uptime_seconds gauge
tcposcrouter_uptime_seconds 100.0
"""
WORKER_2 = b"""# HELP tcposcrouter_users Users in all groups.
# TYPE tcposcrouter_users gauge
tcposcrouter_users 3.0
# HELP tcposcrouter_deliveries Packets sent.
# TYPE tcposcrouter_deliveries counter
tcposcrouter_deliveries_total 500.0
# HELP tcposcrouter_errors Error replies.
# TYPE tcposcrouter_errors counter
tcposcrouter_errors_total{code="rate_limited"} 1.0
tcposcrouter_errors_total{code="packet_invalid"} 4.0
# HELP tcposcrouter_uptime_seconds Seconds since the router started.
# TYPE tcposcrouter_uptime_seconds gauge
tcposcrouter_uptime_seconds 2.0
"""


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_counters_and_gauges_add_up_and_uptime_is_the_longest() -> None:
    merged = samples(merge_metrics([WORKER_1, WORKER_2]))
    assert merged[("tcposcrouter_users", ())] == 11
    assert merged[("tcposcrouter_deliveries_total", ())] == 1500
    assert merged[("tcposcrouter_errors_total", (("code", "rate_limited"),))] == 3
    assert merged[("tcposcrouter_errors_total", (("code", "packet_invalid"),))] == 4
    assert merged[("tcposcrouter_uptime_seconds", ())] == 100  # a worker started again
    assert merged[("tcposcrouter_workers", ())] == 2


def test_one_worker_answering_is_its_own_figures_and_says_so() -> None:
    merged = samples(merge_metrics([WORKER_2]))
    assert merged[("tcposcrouter_users", ())] == 3
    assert merged[("tcposcrouter_workers", ())] == 1


def page(name: str, peer: str) -> dict[str, object]:
    connection = {"transport": "tcp", "framing": "slip", "peer": peer}
    return {"name": name, "users": [{"name": "ana", "connections": [connection]}]}


def test_dashboard_views_add_up_second_by_second_and_keep_every_group() -> None:
    first = {
        "uptime_seconds": 100.0,
        "connections": 8,
        "connections_by_framing": {"slip": 5, "length-prefix": 3},
        "messages_per_second": 10.5,
        "history": [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]],
        "group_pages": [page("band", "10.0.0.1:5000")],
    }
    second = {
        "uptime_seconds": 2.0,
        "connections": 3,
        "connections_by_framing": {"slip": 1, "websocket": 2},
        "messages_per_second": 0.5,
        "history": [[10.0, 100.0]],  # started again a second ago
        "group_pages": [page("choir", "10.0.0.2:6000")],
    }
    merged = merge_views([first, second])
    assert merged["uptime_seconds"] == 100
    assert merged["connections"] == 11
    assert merged["connections_by_framing"] == {"slip": 6, "length-prefix": 3, "websocket": 2}
    assert merged["messages_per_second"] == 11
    assert merged["history"] == [[1.0, 10.0], [2.0, 20.0], [13.0, 130.0]]
    assert [p["name"] for p in merged["group_pages"]] == ["band", "choir"]

    admin = view_for(merged, "admin", None)
    assert len(admin["group_pages"]) == 2
    member = view_for(merged, "member", "choir")
    assert member["access"] == "member"
    (choir,) = member["group_pages"]
    assert "peer" not in choir["users"][0]["connections"][0]  # members see no addresses
    assert merged["group_pages"][1]["users"][0]["connections"][0]["peer"] == "10.0.0.2:6000"
    assert view_for(merged, "member", "gone")["access"] == "public"
    assert view_for(merged, "public", None)["group_pages"] == []
