"""OSC bytes: framing, validation, and the router's own messages.

Pure code shared by the router, the client library and the bridge: no sockets, no event loop,
no clock.
"""
