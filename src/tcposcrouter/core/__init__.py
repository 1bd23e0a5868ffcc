"""The router's core: every decision the router makes, as pure objects.

No asyncio, no sockets, no clock (a test checks every module of this package): the shell passes
bytes and the time in, and gets decisions and bytes out through `Hub` and the sinks it gave.
One line a module:

    hub.py           the facade: open, receive, tick, close, flush, statistics; the packet loop
                     (receive, route, broadcast) is here and only here
    session.py       one connection and its states: NEW > REGISTERED > CLOSING > CLOSED
    lifecycle.py     a connection opened, admitted, ended by the router, gone; shutdown
    admission.py     connection caps, in all and per address, and who makes room
    registration.py  the register pipeline: checks started, held packets, outcomes
    control.py       the control messages: register, private, ping, time
    login.py         the checks a register must pass, in two steps around the hashing
    throttle.py      the failed-login throttle, by account and by address
    login_report.py  failed and throttled logins summarised per address and minute
    group_page.py    the dashboard's group page login, throttled like a register
    auth.py          password hashes: keyed digests in memory, scrypt for the store and files
    directory.py     groups, users and their connections; receivers; membership events
    pinned.py        pinned groups and allow_new_groups, as the configuration gives them
    policy.py        the error policy: replies, counts, log lines, closes
    episodes.py      a member's repeated error logged once, then counted
    timers.py        once a second: timeouts, close grace, episodes, the login report
    rates.py         token buckets: the rate budget of a connection
    outbox.py        frame once per framing, a queue per connection, one write per turn
    elsewhere.py     the port to other nodes: packets and presence from there
    settings.py      the limits and switches the parts share, replaced on a reload
    statistics.py    the counters and the snapshot statistics() returns
"""
