"""The configuration as the core takes it, and the part of it the hub's parts share.

The router has one configuration object: server/config.py's `ServerConfig`, which the command
line builds from the flags and the configuration file (cli/) and hands to the running router,
which hands it to `Hub` as it is. The core names what it reads of it with `RouterSettings`, so
that it does not import the layer above. The parts share `Settings`: a reload
(`Hub.reconfigure`) replaces the limits here once, and every part sees them.

Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..limits import Limits
from .pinned import GroupRules

__all__ = ["RouterSettings", "Settings"]


class RouterSettings(Protocol):
    """What the core reads of the router's configuration (server/config.py's ServerConfig)."""

    @property
    def limits(self) -> Limits: ...

    @property
    def log_messages(self) -> bool: ...

    @property
    def group_rules(self) -> GroupRules: ...


@dataclass
class Settings:
    limits: Limits = field(default_factory=Limits)
    # Write the address and size of every routed packet to the debug log. Off by default: message
    # contents are the musicians' business, and logging per packet costs more than routing it.
    log_messages: bool = False
    # Seconds to add to the hub's `now` for Unix time: the shell's wall clock, for the time
    # service (the core reads no clock of its own).
    wall_clock_offset: float = 0.0
