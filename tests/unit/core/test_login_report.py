"""The login report: failed logins summed up per address and minute."""

from __future__ import annotations

from tcposcrouter.core.login_report import LoginReport

ATTACKER = "203.0.113.9"


def test_the_login_report_sums_up_per_address_and_minute() -> None:
    report = LoginReport()
    for i in range(30):
        report.failed(ATTACKER, ("band", f"u{i % 3}"), now=float(i))
    report.throttled(ATTACKER, now=31.0)
    assert report.due(now=59.0) == []
    (line,) = report.due(now=60.0)
    assert line == (
        f"failed logins from {ATTACKER} in 60 s: 30 wrong passwords at 3 accounts, "
        "1 refused as throttled"
    )
    assert report.due(now=200.0) == [] and report.first(ATTACKER)
