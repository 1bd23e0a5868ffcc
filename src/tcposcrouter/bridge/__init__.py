"""The bridge: a group of a router, reached by the local machine's UDP and WebSocket OSC apps.
One line a module:

    bridge.py        the bridge: endpoints, order, loss while the router is away
    retime.py        moving bundle time tags between clocks (pure)
    ableton_link.py  a local Ableton Link session kept in step with the group's tempo
    link_phase.py    Link's phase against the group's: the error, when to move it (pure)
"""

from .bridge import Bridge, BridgeConfig

__all__ = ["Bridge", "BridgeConfig"]
