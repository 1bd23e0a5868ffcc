"""OSC bytes: framing, validation, and the router's own messages.

Pure code shared by the router, the client library and the bridge: no sockets, no event loop,
no clock. One line a module:

    framing.py      length-prefix, SLIP and WebSocket framings: decoders, framers
    validate.py     the hot path's byte walk; control messages inside bundles
    messages.py     the router's own messages: built, and register/private/time read
    tempo.py        the wire forms of a group's tempo and of /oscrouter/info
    state.py        the wire forms of a group's state: requests read, messages unwrapped and wrapped
    resume.py       the wire forms of a kept place: session, ack and resume read; the replies
    reading.py      packets read into values for clients: strings UTF-8, else Latin-1
    first_bytes.py  what a stream speaks, from its first byte: OSC, HTTP or TLS
"""
