"""Who is present on which other node, from the store's events and snapshots. Pure code.

A user may be connected on several nodes at once; it is present elsewhere while any other
node has it. `joined` and `left` return whether that changed, which is when the hub's user
lists change (`ClusterPort.remote_joined`, `ClusterPort.remote_left`).

A group *kept apart* is one this node holds with another password than the store has (the
store lost it, and the group was made again elsewhere meanwhile): nobody elsewhere is present
in it here, so none of its packets go out or come in (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Account", "RemotePresence"]

Account = tuple[str, str]  # (group, user)


class RemotePresence:
    def __init__(self, own_node: str) -> None:
        self.own_node = own_node
        self._nodes: dict[Account, set[str]] = {}
        self._missing: set[Account] = set()  # accounts not in the last snapshot
        # Per group, the other nodes with users of it and how many: where its packets go.
        self._groups: dict[str, dict[str, int]] = {}
        self.apart: set[str] = set()

    def keep_apart(self, group: str) -> list[Account]:
        """Keep `group` apart from the cluster; return the accounts no longer present."""
        self.apart.add(group)
        went = [account for account in self._nodes if account[0] == group]
        for account in went:
            del self._nodes[account]
        self._missing = {account for account in self._missing if account[0] != group}
        self._groups.pop(group, None)
        return went

    def others(self) -> set[str]:
        """Every other node with users."""
        return {node for nodes in self._nodes.values() for node in nodes}

    def joined(self, node: str, group: str, user: str) -> bool:
        """True if the user was present on no other node before."""
        if node == self.own_node or group in self.apart:
            return False
        nodes = self._nodes.setdefault((group, user), set())
        first = not nodes
        if node not in nodes:
            nodes.add(node)
            self._count(group, node, 1)
        return first

    def left(self, node: str, group: str, user: str) -> bool:
        """True if the user is now present on no other node."""
        nodes = self._nodes.get((group, user))
        if nodes is None or node not in nodes:
            return False
        nodes.discard(node)
        self._count(group, node, -1)
        if nodes:
            return False
        del self._nodes[(group, user)]
        return True

    def _count(self, group: str, node: str, change: int) -> None:
        counts = self._groups.setdefault(group, {})
        counts[node] = counts.get(node, 0) + change
        if counts[node] <= 0:
            del counts[node]
            if not counts:
                del self._groups[group]

    def nodes_in(self, group: str) -> list[str]:
        """The other nodes with users of `group`."""
        counts = self._groups.get(group)
        return [] if counts is None else list(counts)

    def replace(
        self, snapshot: Iterable[tuple[str, str, str]]
    ) -> tuple[list[Account], list[Account]]:
        """Take the store's whole picture, (node, group, user) for every live node; return
        (accounts now present elsewhere that were not, accounts gone from two snapshots in a
        row). Events keep the table current; a snapshot only mends what events missed, and a
        user missing from one snapshot may be on a node that has not announced itself again
        since Redis came back (a restarted Redis starts empty): it leaves at the second."""
        fresh: dict[Account, set[str]] = {}
        apart = self.apart
        for node, group, user in snapshot:
            if node != self.own_node and group not in apart:
                fresh.setdefault((group, user), set()).add(node)
        came = [account for account in fresh if account not in self._nodes]
        absent = {account for account in self._nodes if account not in fresh}
        went = [account for account in absent if account in self._missing]
        self._missing = absent - set(went)
        for account in went:
            del self._nodes[account]
        self._nodes.update(fresh)
        self._groups = {}
        for (group, _), nodes in self._nodes.items():
            for node in nodes:
                self._count(group, node, 1)
        return came, went

    def nodes_of(self, group: str, user: str) -> set[str]:
        return set(self._nodes.get((group, user), ()))

    def __len__(self) -> int:
        return len(self._nodes)
