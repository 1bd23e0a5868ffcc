"""`/metrics` (server/http/metrics.py): the router's statistics in Prometheus's text format,
read back with prometheus-client's own parser, as a Prometheus server would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from support.net import Net
from support.osc import msg
from tcposcrouter.server.http.metrics import registry_for, render
from tcposcrouter.server.running import ServerStatistics


def scrape(net: Net) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    def statistics() -> ServerStatistics:
        return ServerStatistics(
            hub=net.hub.statistics(),
            uptime_seconds=12.0,
            flushes=3,
            internal_errors=0,
            shutting_down=False,
        )

    text = render(registry_for(statistics)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_scrape_counts_what_the_hub_saw() -> None:
    net = Net()
    ana, bob = net.join("ana"), net.join("bob")
    net.send(ana, msg("/note", 60), msg("/note", 62))
    net.send(bob, msg("/oscrouter/private", "nobody", "/x"))
    refused = net.connect()
    net.send(refused, msg("/note", 1))
    metrics = scrape(net)
    assert metrics[("tcposcrouter_registrations_total", ())] == 2
    tcp = ("tcposcrouter_connections", (("framing", "length-prefix"), ("transport", "tcp")))
    assert metrics[tcp] == 3  # the refused one too, until its connection is gone
    assert metrics[("tcposcrouter_errors_total", (("code", "unknown_user"),))] == 1
    assert metrics[("tcposcrouter_errors_total", (("code", "not_registered"),))] == 1
    assert metrics[("tcposcrouter_packets_in_total", ())] >= 5


def test_no_user_or_group_name_is_a_label() -> None:
    net = Net()
    net.join("ana", "secret-band")
    assert not any(
        "ana" in value or "secret-band" in value for _, labels in scrape(net) for _, value in labels
    )


def test_places_held_and_resumed_are_counted() -> None:
    net = Net()
    ana, cy = net.join("ana"), net.join("cy")
    for member in (ana, cy):
        net.got(member)
        net.send(member, msg("/oscrouter/session", 30))
    tokens = [str(net.got_messages(m)[0][1][0]) for m in (ana, cy)]
    net.leave(ana)
    net.leave(cy)
    back = net.connect()
    net.send(back, msg("/oscrouter/session/resume", "band", tokens[0], 0))
    metrics = scrape(net)
    assert metrics[("tcposcrouter_places_held_total", ())] == 2
    assert metrics[("tcposcrouter_resumes_total", ())] == 1
