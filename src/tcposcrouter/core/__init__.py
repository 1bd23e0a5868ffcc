"""The router's core: every decision the router makes, as pure objects.

No asyncio, no sockets, no clock (a test checks every module of this package): the shell passes
bytes and the time in, and gets decisions and bytes out through `Hub` and the sinks it gave.
"""
