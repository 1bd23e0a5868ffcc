"""The bridge: a group of a router, reached by the local machine's UDP and WebSocket OSC apps.
One line a module:

    bridge.py  the bridge: endpoints, order, loss while the router is away
    retime.py  moving bundle time tags between clocks (pure)
"""

from .bridge import Bridge, BridgeConfig

__all__ = ["Bridge", "BridgeConfig"]
