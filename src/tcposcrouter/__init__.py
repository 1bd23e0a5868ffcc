"""tcposcrouter: an OpenSoundControl message router for networked music.

The packages, from the bottom: `osc` (framing, validation, the router's own messages; shared with
clients), `core` (the whole router as pure objects), `server` (the asyncio shells), `cli`.
"""

__version__ = "1.0.0.dev0"

__all__ = ["__version__"]
