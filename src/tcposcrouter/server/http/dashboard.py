"""What the dashboard shows: the router's traffic sampled once a second, and the views built
from it for each kind of visitor.

Three views, by what the visitor proved (docs/protocol.md §8):

* `public` — counts only: uptime, connections by transport and framing, groups, users,
  messages/s and bytes/s with their last minute, errors by code. No name, no address.
* `member` — the public view and one group's page: its users, each connection's framing and
  round-trip time, each user's rates (for a visitor who gave the group's name and password).
* `admin` — every group's page, with the connections' addresses (with the admin token).

Pure code: the shell hands in the hub's state, the time, and each connection's round-trip
time as the kernel measures it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.directory import Directory, Group, Member, User
from ...core.resume import HeldPlace
from ...core.statistics import HubStatistics
from ...osc.framing import Framing

__all__ = ["HISTORY_SECONDS", "RECENT_ERRORS_SECONDS", "RoundTrip", "Traffic", "transport_of"]

# The live chart's span: a minute shows a piece's pulse and a stall at a glance.
HISTORY_SECONDS = 60
# "Recent errors": the last ten minutes, long enough to still see what went wrong during the
# last piece.
RECENT_ERRORS_SECONDS = 600

# (round-trip time, its variation), in milliseconds, or None where the kernel does not tell.
RoundTrip = Callable[[Member], "tuple[float, float] | None"]


def transport_of(framing: str) -> str:
    """The transport of a connection by its framing's name (`Framing.value`, or "unknown"
    before its first byte, which only TCP has): WebSocket is a transport of its own."""
    return "websocket" if framing == Framing.WEBSOCKET.value else "tcp"


@dataclass
class _Rate:
    packets: float = 0.0
    bytes: float = 0.0


class Traffic:
    """Samples the hub once a second: rates overall, per group and per user, and their history."""

    def __init__(self) -> None:
        self._last_time: float | None = None
        self._last_in: tuple[int, int] = (0, 0)
        self._last_users: dict[User, tuple[int, int]] = {}
        self._last_errors: dict[str, int] = {}
        self.total = _Rate()
        self.users: dict[User, _Rate] = {}
        self.groups: dict[Group, _Rate] = {}
        self.history: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=HISTORY_SECONDS
        )
        self.group_history: dict[Group, collections.deque[float]] = {}
        # (when, code, how many): error replies per second, for the last ten minutes.
        self._errors: collections.deque[tuple[float, str, int]] = collections.deque()

    def sample(
        self, statistics: HubStatistics, directory: Directory, now: float, watched: bool = True
    ) -> None:
        """This second's rates. The router's own always; every member's and group's only while
        a dashboard is `watched`: with twenty thousand members that walk holds the loop for
        tens of milliseconds, which nobody needs when nobody looks (a page opened afterwards
        shows the groups' rates from its second second on)."""
        elapsed = None if self._last_time is None else now - self._last_time
        self._last_time = now
        packets_in, bytes_in = statistics.packets_in, statistics.bytes_in
        if elapsed:
            self.total = _Rate(
                (packets_in - self._last_in[0]) / elapsed, (bytes_in - self._last_in[1]) / elapsed
            )
            self.history.append((self.total.packets, self.total.bytes))
        self._last_in = (packets_in, bytes_in)

        users: dict[User, tuple[int, int]] = {}
        self.users = {}
        self.groups = {}
        for group in directory.groups.values() if watched else ():
            group_rate = _Rate()
            for user in group.users.values():
                sent = users[user] = (user.packets_sent, user.bytes_sent)
                before = self._last_users.get(user)
                rate = _Rate()
                if elapsed and before is not None:
                    rate = _Rate((sent[0] - before[0]) / elapsed, (sent[1] - before[1]) / elapsed)
                self.users[user] = rate
                group_rate.packets += rate.packets
                group_rate.bytes += rate.bytes
            self.groups[group] = group_rate
            if elapsed:
                history = self.group_history.get(group)
                if history is None:
                    history = self.group_history[group] = collections.deque(maxlen=HISTORY_SECONDS)
                history.append(group_rate.packets)
        self._last_users = users  # users who left are forgotten here
        for gone in [g for g in self.group_history if g not in self.groups]:
            del self.group_history[gone]

        for code, count in statistics.errors.items():
            new = count - self._last_errors.get(code, 0)
            if new > 0 and elapsed is not None:
                self._errors.append((now, code, new))
        self._last_errors = dict(statistics.errors)
        while self._errors and now - self._errors[0][0] > RECENT_ERRORS_SECONDS:
            self._errors.popleft()

    def recent_errors(self) -> dict[str, int]:
        recent: dict[str, int] = {}
        for _, code, count in self._errors:
            recent[code] = recent.get(code, 0) + count
        return recent

    # -- views ------------------------------------------------------------------------------

    def public_view(self, statistics: HubStatistics, uptime: float) -> dict[str, Any]:
        by_framing = statistics.connections_by_framing
        by_transport: dict[str, int] = {"tcp": 0, "websocket": 0}
        for framing, count in by_framing.items():
            by_transport[transport_of(framing)] += count
        return {
            "access": "public",
            "group_pages": [],
            "uptime_seconds": round(uptime, 1),
            "connections": statistics.connections,
            "connections_by_transport": by_transport,
            "connections_by_framing": dict(by_framing),
            "groups": statistics.groups,
            "users": statistics.users,
            "messages_per_second": round(self.total.packets, 1),
            "bytes_per_second": round(self.total.bytes, 1),
            "history": [[round(p, 1), round(b, 1)] for p, b in self.history],
            "recent_errors": self.recent_errors(),
            "errors_since_start": dict(statistics.errors),
            "slow_consumer_resets": statistics.slow_consumer_resets,
        }

    def group_view(
        self, group: Group, round_trip: RoundTrip, *, with_addresses: bool
    ) -> dict[str, Any]:
        rate = self.groups.get(group, _Rate())
        users = []
        for user in group.users.values():
            user_rate = self.users.get(user, _Rate())
            connections = []
            for session in user.sessions:
                rtt = round_trip(session)
                framing = None if session.framing is None else session.framing.value
                connection: dict[str, Any] = {
                    "transport": transport_of(framing or "unknown"),
                    "framing": framing,
                    # Its connection dropped and its place is kept for a resume (§14).
                    "held": isinstance(session, HeldPlace),
                    "rtt_ms": None if rtt is None else round(rtt[0], 2),
                    "rtt_var_ms": None if rtt is None else round(rtt[1], 2),
                }
                if with_addresses:
                    connection["peer"] = session.peer
                connections.append(connection)
            users.append(
                {
                    "name": user.name,
                    "elsewhere": user.remote and not user.sessions,
                    "messages_per_second": round(user_rate.packets, 1),
                    "bytes_per_second": round(user_rate.bytes, 1),
                    "connections": connections,
                }
            )
        pinned = group.pinned
        return {
            "name": group.name,
            "pinned": pinned is not None,
            "description": "" if pinned is None else pinned.description,
            "messages_per_second": round(rate.packets, 1),
            "bytes_per_second": round(rate.bytes, 1),
            "history": [round(p, 1) for p in self.group_history.get(group, ())],
            "users": users,
        }

    def admin_view(
        self,
        statistics: HubStatistics,
        directory: Directory,
        uptime: float,
        round_trip: RoundTrip,
    ) -> dict[str, Any]:
        view = self.public_view(statistics, uptime)
        view["access"] = "admin"
        view["group_pages"] = [
            self.group_view(group, round_trip, with_addresses=True)
            for group in directory.groups.values()
        ]
        return view

    def member_view(
        self,
        statistics: HubStatistics,
        group: Group | None,
        uptime: float,
        round_trip: RoundTrip,
    ) -> dict[str, Any]:
        view = self.public_view(statistics, uptime)
        view["access"] = "member"
        view["group_pages"] = (
            [] if group is None else [self.group_view(group, round_trip, with_addresses=False)]
        )
        return view
