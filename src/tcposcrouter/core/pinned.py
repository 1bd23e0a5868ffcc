"""Groups an operator defines in advance, and whether clients may create others.

A *pinned* group exists from start-up with the password the operator chose, stays when its
last member leaves (so nobody can take its name with another password meanwhile), and may
reserve user names with their own passwords (`users`). Listing users closes the group to any
other name unless `other_users` is set. `max_users` overrides the router's per-group limit.

Pure data: the configuration file makes these (cli/config.py), the directory keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .auth import PasswordHash

__all__ = ["GroupRules", "PinnedGroup"]


@dataclass(frozen=True)
class PinnedGroup:
    name: str
    password: PasswordHash
    users: Mapping[str, PasswordHash] = field(default_factory=dict)
    other_users: bool = True  # False: only the names in `users` may join
    max_users: int = 0  # 0: the router's max_users_per_group
    description: str = ""

    def admits(self, user: str) -> bool:
        return self.other_users or user in self.users


@dataclass(frozen=True)
class GroupRules:
    """The pinned groups, and whether a register may create any other group."""

    pinned: tuple[PinnedGroup, ...] = ()
    allow_new_groups: bool = True

    def names(self) -> list[str]:
        return [group.name for group in self.pinned]
