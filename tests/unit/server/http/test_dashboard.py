"""The dashboard's traffic sampling and its three views, driven through the pure hub."""

from __future__ import annotations

import json

from support.net import Net
from support.osc import msg
from tcposcrouter.core.directory import Member
from tcposcrouter.server.http.dashboard import HISTORY_SECONDS, RECENT_ERRORS_SECONDS, Traffic


def no_rtt(session: Member) -> tuple[float, float] | None:
    return (12.5, 3.0) if session.framing is not None and session.framing.is_stream else None


def sample(net: Net, traffic: Traffic) -> None:
    traffic.sample(net.hub.statistics(), net.hub.directory, net.now)


def test_rates_per_user_group_and_router() -> None:
    net, traffic = Net(), Traffic()
    ana = net.join("ana", "band")
    bob = net.join("bob", "band", websocket=True)
    net.join("cy", "other")
    sample(net, traffic)
    for _ in range(30):
        net.send(ana, msg("/n", 1))
    for _ in range(10):
        net.send(bob, msg("/n", 2))
    net.now += 2.0
    sample(net, traffic)

    band = traffic.group_view(net.hub.directory.groups["band"], no_rtt, with_addresses=True)
    users = {u["name"]: u for u in band["users"]}
    assert users["ana"]["messages_per_second"] == 15.0
    assert users["bob"]["messages_per_second"] == 5.0
    assert users["ana"]["bytes_per_second"] == 30 * (len(msg("/n", 1)) + 4) / 2  # framing too
    assert band["messages_per_second"] == 20.0
    assert band["history"] == [20.0]
    assert users["ana"]["connections"] == [
        {
            "transport": "tcp",
            "framing": "length-prefix",
            "held": False,
            "rtt_ms": 12.5,
            "rtt_var_ms": 3.0,
            "peer": "192.0.2.1:40000",
        }
    ]
    assert users["bob"]["connections"][0]["transport"] == "websocket"
    assert users["bob"]["connections"][0]["rtt_ms"] is None
    # Everything received counts for the router as a whole, registers included.
    assert traffic.total.packets == 40 / 2


def test_while_nobody_watches_only_the_routers_own_rates_are_sampled() -> None:
    net, traffic = Net(), Traffic()
    ana = net.join("ana", "band")
    net.join("bob", "band")
    traffic.sample(net.hub.statistics(), net.hub.directory, net.now, watched=False)
    for _ in range(30):
        net.send(ana, msg("/n", 1))
    net.now += 2.0
    traffic.sample(net.hub.statistics(), net.hub.directory, net.now, watched=False)
    assert traffic.total.packets == 30 / 2
    assert traffic.users == {} and traffic.groups == {}  # no walk through every member
    band = net.hub.directory.groups["band"]
    assert traffic.group_view(band, no_rtt, with_addresses=False)["messages_per_second"] == 0
    # A dashboard opens: the groups' rates are there from its second sample on.
    for _ in range(10):
        net.send(ana, msg("/n", 1))
    net.now += 1.0
    sample(net, traffic)
    for _ in range(10):
        net.send(ana, msg("/n", 1))
    net.now += 1.0
    sample(net, traffic)
    assert traffic.group_view(band, no_rtt, with_addresses=False)["messages_per_second"] == 10


def test_a_user_who_leaves_and_returns_starts_from_nothing() -> None:
    net, traffic = Net(), Traffic()
    ana = net.join("ana")
    net.join("keeps-the-group")
    for _ in range(50):
        net.send(ana, msg("/n"))
    sample(net, traffic)
    net.leave(ana)
    again = net.join("ana")
    net.send(again, msg("/n"))
    net.now += 1.0
    sample(net, traffic)
    band = traffic.group_view(net.hub.directory.groups["band"], no_rtt, with_addresses=False)
    rates = {u["name"]: u["messages_per_second"] for u in band["users"]}
    assert rates == {"keeps-the-group": 0.0, "ana": 0.0}  # unknown before: no rate yet
    net.send(again, msg("/n"))
    net.now += 1.0
    sample(net, traffic)
    band = traffic.group_view(net.hub.directory.groups["band"], no_rtt, with_addresses=False)
    assert {u["name"]: u["messages_per_second"] for u in band["users"]}["ana"] == 1.0


def test_history_keeps_one_minute_and_forgets_groups_that_end() -> None:
    net, traffic = Net(), Traffic()
    solo = net.join("solo", "short-lived")
    for _ in range(HISTORY_SECONDS + 30):
        net.now += 1.0
        sample(net, traffic)
    assert len(traffic.history) == HISTORY_SECONDS
    assert len(traffic.group_history) == 1
    net.leave(solo)
    net.now += 1.0
    sample(net, traffic)
    assert traffic.group_history == {} and traffic.users == {}


def test_recent_errors_by_code_for_ten_minutes() -> None:
    net, traffic = Net(), Traffic()
    ana = net.join("ana")
    sample(net, traffic)
    net.send(ana, b"not osc")
    net.send(ana, b"nor this")
    net.now += 1.0
    sample(net, traffic)
    assert traffic.recent_errors() == {"packet_invalid": 2}
    net.now += RECENT_ERRORS_SECONDS + 1
    sample(net, traffic)
    assert traffic.recent_errors() == {}


def test_the_public_view_has_counts_and_no_names() -> None:
    net, traffic = Net(), Traffic()
    net.join("secret-user", "secret-group")
    net.join("web-user", "secret-group", websocket=True)
    net.connect()  # not registered, no byte yet
    sample(net, traffic)
    view = traffic.public_view(net.hub.statistics(), 42.0)
    text = json.dumps(view)
    assert "secret" not in text and "web-user" not in text and "192.0.2.1" not in text
    assert view["access"] == "public" and view["group_pages"] == []
    assert view["connections"] == 3
    assert view["connections_by_transport"] == {"tcp": 2, "websocket": 1}
    assert view["connections_by_framing"] == {"length-prefix": 1, "websocket": 1, "unknown": 1}
    assert (view["groups"], view["users"], view["uptime_seconds"]) == (1, 2, 42.0)


def test_member_and_admin_views() -> None:
    net, traffic = Net(), Traffic()
    net.join("ana", "band")
    net.join("zed", "other")
    sample(net, traffic)
    stats, directory = net.hub.statistics(), net.hub.directory
    member = traffic.member_view(stats, directory.groups["band"], 1.0, no_rtt)
    assert [p["name"] for p in member["group_pages"]] == ["band"]
    assert "zed" not in json.dumps(member) and "peer" not in json.dumps(member)
    admin = traffic.admin_view(stats, directory, 1.0, no_rtt)
    assert [p["name"] for p in admin["group_pages"]] == ["band", "other"]
    assert admin["group_pages"][1]["users"][0]["connections"][0]["peer"] == "192.0.2.1:40000"


def test_a_dropped_member_whose_place_is_kept_is_shown_so() -> None:
    net, traffic = Net(), Traffic()
    ana = net.join("ana", "band")
    net.join("bob", "band")
    net.send(ana, msg("/oscrouter/session", 30))
    net.leave(ana)
    sample(net, traffic)
    admin = traffic.admin_view(net.hub.statistics(), net.hub.directory, 1.0, no_rtt)
    users = {u["name"]: u for u in admin["group_pages"][0]["users"]}
    assert [c["held"] for c in users["ana"]["connections"]] == [True]
    assert [c["held"] for c in users["bob"]["connections"]] == [False]
