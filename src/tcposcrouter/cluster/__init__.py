"""Several router processes, on one machine or many, serving one set of groups through Redis.
One line a module:

    node.py            ClusterNode: the facade the command line hands to the router
    startup.py         before joining: is it Redis, does it take the password, is the node's name
                       free (a misconfiguration ends the router at start)
    link.py            the link to Redis: reconnects, degraded state, heartbeat, sweep
    presence_sync.py   users announced, the others' read again, presence events applied
    traffic.py         packets out (the hub's Elsewhere) and what pub/sub brings in
    ensemble.py        the groups' tempo and state in the store: changes, copies, restore
    publisher.py       the connection that publishes packets, replies only counted
    writer.py          leaves and failed logins written to the store, in order
    registers.py       a batch of registers carried through the store, a group kept apart, creations
                       held while the store is restored
    register_round.py  a batch of registers through the store: the decisions (pure)
    recovery.py        Redis losing its memory: the generation, who has yet to write back (pure)
    store.py           the keys and the Lua scripts: join, leave, a dead node, tempo and state
                       (pure)
    wire.py            what nodes publish: packets, presence events, failed logins, tempo and
                       state records (pure)
    presence.py        who is on which other node (pure)
    resp.py            the few bytes of Redis's protocol the publisher writes (pure)
    workers.py         --workers: N processes on one port, supervised
"""
