"""Redis losing its memory (restarted without persistence, or flushed), and what keeps a
group's password through it (docs/cluster.md, "When Redis loses its memory").

The store holds each group's and user's password hash only while the group has users, and
nodes write their users back when they connect. After a loss, a node that has not written
back yet may hold a group whose hash the store no longer has; a register for that group
elsewhere would then create it anew, with any password. So:

- the store carries a *generation*, made by the first node to find it missing; a node that
  sees another generation than the one it knew knows the store lost what it held;
- that node then holds back every register that would create a group or a user in the store
  until the nodes that had users (as it last saw them) have written theirs back, or
  `RECOVERY_SECONDS` have passed (a node still away by then is kept apart when it returns:
  cluster/presence.py).

Pure code: the node reads the generation and the written-back set; this decides.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RECOVERY_SECONDS", "StoreRecovery"]

# Nodes reconnect to a Redis that is back within 10 s (cluster/link.py's longest backoff) and
# write back in a moment: a node away longer than this is away, not late.
RECOVERY_SECONDS = 15.0


class StoreRecovery:
    def __init__(self) -> None:
        self.generation: bytes | None = None  # None: not connected yet
        self._waiting_for: set[str] = set()
        self._until = 0.0

    def seen(self, generation: bytes, now: float, others_with_users: Iterable[str]) -> bool:
        """The store's generation, read now. True if the store lost what it held since this
        node last looked: then creations wait for `others_with_users` to write back."""
        lost = self.generation is not None and generation != self.generation
        self.generation = generation
        if lost:
            self._waiting_for = set(others_with_users)
            self._until = now + RECOVERY_SECONDS
        return lost

    def waiting_for(self, now: float) -> set[str]:
        """The nodes still to write back (empty: registers go on as usual)."""
        if self._waiting_for and now >= self._until:
            self._waiting_for = set()
        return self._waiting_for

    def written_back(self, nodes: Iterable[str]) -> None:
        self._waiting_for.difference_update(nodes)
