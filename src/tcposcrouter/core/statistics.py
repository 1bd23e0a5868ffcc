"""Counters of the router and the snapshot `Hub.statistics()` returns.

Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .directory import Directory
    from .outbox import Outbox

__all__ = ["Counters", "HubStatistics", "snapshot"]


@dataclass
class Counters:
    """What the hub counts as it goes; read through `Hub.statistics()`."""

    connections_opened: int = 0
    connections_closed: int = 0
    registrations: int = 0
    packets_in: int = 0
    bytes_in: int = 0
    packets_from_elsewhere: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # failed registers, by code
    errors: dict[str, int] = field(default_factory=dict)  # every error reply, by code
    drops: dict[str, int] = field(default_factory=dict)  # packets not routed, by cause
    slow_consumer_resets: int = 0
    rate_limit_pauses: int = 0  # reads after which a connection's reading was paused
    password_checks: int = 0  # register checks handed to the shell to run
    checks_repeated: int = 0  # of those, started again because the group changed meanwhile
    made_room: int = 0  # unregistered connections closed to admit newer ones
    replaced: int = 0  # connections replaced by a newer one of the same user and address
    places_held: int = 0  # members' places held after their connection ended (core/resume.py)
    resumes: int = 0  # of those and of live ones, taken back by a new connection

    def count(self, table: dict[str, int], key: str, amount: int = 1) -> None:
        table[key] = table.get(key, 0) + amount


@dataclass(frozen=True)
class HubStatistics:
    """One snapshot of the router's state and counters since start.

    `connections_by_framing` counts open connections by their framing ("unknown" before the
    first byte); `deliveries` counts packets put into receivers' mailboxes, `writes` and
    `bytes_out` what was handed to the connections; `drops` counts packets not routed, by cause
    (`packet_invalid`, and for packets from elsewhere the reason they were refused; a rate
    limit drops nothing, it pauses reading: `rate_limit_pauses`).
    """

    connections: int
    connections_by_framing: dict[str, int]
    connections_opened: int
    connections_closed: int
    registrations: int
    refusals: dict[str, int]
    errors: dict[str, int]
    packets_in: int
    bytes_in: int
    packets_from_elsewhere: int
    deliveries: int
    writes: int
    bytes_out: int
    drops: dict[str, int]
    slow_consumer_resets: int
    rate_limit_pauses: int
    password_checks: int
    made_room: int
    replaced: int
    places_held: int  # members' places held after a drop, since start
    resumes: int  # places taken back by a new connection, since start
    groups: int
    users: int


def snapshot(
    counters: Counters, outbox: Outbox, by_framing: dict[str, int], directory: Directory
) -> HubStatistics:
    """The hub's figures at this moment; `by_framing`: its connections by framing."""
    return HubStatistics(
        connections=sum(by_framing.values()),
        connections_by_framing=dict(by_framing),
        connections_opened=counters.connections_opened,
        connections_closed=counters.connections_closed,
        registrations=counters.registrations,
        refusals=dict(counters.refusals),
        errors=dict(counters.errors),
        packets_in=counters.packets_in,
        bytes_in=counters.bytes_in,
        packets_from_elsewhere=counters.packets_from_elsewhere,
        deliveries=outbox.deliveries,
        writes=outbox.writes,
        bytes_out=outbox.bytes_written,
        drops=dict(counters.drops),
        slow_consumer_resets=counters.slow_consumer_resets,
        rate_limit_pauses=counters.rate_limit_pauses,
        password_checks=counters.password_checks,
        made_room=counters.made_room,
        replaced=counters.replaced,
        places_held=counters.places_held,
        resumes=counters.resumes,
        groups=len(directory.groups),
        users=directory.users(),
    )
