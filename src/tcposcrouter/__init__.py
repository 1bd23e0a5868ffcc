"""tcposcrouter: an OpenSoundControl message router for networked music.

The layers, from the bottom: `framing` and `osc` (bytes and packets), `routing` (sessions, users,
groups), `hub` (the whole router as a pure object), `server` (the asyncio shell), `cli`.
"""

__version__ = "1.0.0.dev0"

__all__ = ["__version__"]
