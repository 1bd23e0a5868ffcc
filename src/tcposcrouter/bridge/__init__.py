"""The bridge: a group of a router, reached by the local machine's UDP and WebSocket OSC apps."""

from .bridge import Bridge, BridgeConfig

__all__ = ["Bridge", "BridgeConfig"]
