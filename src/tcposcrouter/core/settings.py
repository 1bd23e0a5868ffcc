"""What the hub's parts read of its configuration, in one object they share: a reload replaces
the limits here once, and every part sees them (`Hub.set_limits` does the rest).

Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..limits import Limits

__all__ = ["HubConfig", "Settings"]


@dataclass
class Settings:
    limits: Limits = field(default_factory=Limits)
    # Write the address and size of every routed packet to the debug log. Off by default: message
    # contents are the musicians' business, and logging per packet costs more than routing it.
    log_messages: bool = False
    # Seconds to add to the hub's `now` for Unix time: the shell's wall clock, for the time
    # service (the core reads no clock of its own).
    wall_clock_offset: float = 0.0


@dataclass(frozen=True)
class HubConfig:
    """What a hub is made with."""

    limits: Limits = field(default_factory=Limits)
    log_messages: bool = False  # debug: log every routed packet's address and size
