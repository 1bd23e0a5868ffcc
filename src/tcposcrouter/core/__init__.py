"""The router's core: every decision the router makes, as pure objects.

No asyncio, no sockets, no clock (a test checks every module of this package): the shell passes
bytes and the time in, and gets decisions and bytes out through `Hub` and the sinks it gave.
One line a module:

    hub.py           the facade: open, receive, checked, tick, gone, flush, statistics; the
                     packet loop (receive, route, broadcast) is here and only here
    session.py       one connection and every state it is in: NEW > REGISTERING > REGISTERED
                     > CLOSING > CLOSED, and REFUSED
    register.py      the register, both halves: begun, its passwords checked, joined or refused
    lifecycle.py     a connection opened, admitted, ended by the router, gone; shutdown
    admission.py     connection caps, in all and per address, and who makes room
    control.py       a member's control messages: private, ping, time, tempo, state, session;
                     info
    tempo.py         a group's tempo: its timeline, the change pending, the members' requests
    state.py         a group's state for late joiners: kept, delivered, followed, told on joining
    resume.py        a place kept through a drop: numbered packets, the place held, the resume
    throttle.py      the failed-login throttle, by account and by address
    login_report.py  failed and throttled logins summarised per address and minute
    auth.py          password hashes: keyed digests in memory, scrypt for the store and files
    directory.py     groups, users and their connections; receivers; membership events
    pinned.py        pinned groups and allow_new_groups, as the configuration gives them
    policy.py        the error policy: replies, counts, log lines, closes; a member's repeats
                     logged once per episode; once a second, timeouts and overdue closes
    rates.py         token buckets: the rate budget of a connection
    outbox.py        frame once per framing, a queue per connection, one write per turn
    elsewhere.py     the port to other nodes: packets and presence from there, the store's
                     changes of tempo and state applied to the copies here
    settings.py      what the core reads of the configuration; what its parts share of it
    statistics.py    the counters and the snapshot statistics() returns
"""
