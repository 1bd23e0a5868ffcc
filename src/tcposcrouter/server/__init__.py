"""The asyncio shells around the core: they move bytes between sockets and the hub. One line a
module (docs/architecture.md draws them):

    app.py          RouterServer: start, the flush per loop turn, the tick, reload, shutdown
    config.py       ServerConfig: the ports, the limits, what a reload may change
    running.py      the seams the shells share: RunningRouter, Connection, ClusterEdge
    listeners.py    the OSC ports, plain and TLS, opened with a public router's options and
                    accepted a few connections a turn
    one_port.py     --port: every kind of client on one port, told apart by its first bytes
    connection.py   HubConnection: a shell's calls into the hub, each given the time
    tcp.py          one TCP connection: feeds the hub, is the hub's Sink
    wrong_port.py   what a port answers a client that speaks another port's protocol (pure)
    passwords.py    the checks that need scrypt: in worker threads, or through the cluster
    to_owner.py     --workers: a connection moved to its group's worker, the shells' one call
    handoff.py      --workers: a connection handed to the worker that owns its group
    relay.py        --workers: a TLS or WebSocket connection relayed to its group's worker
    whole.py        --workers: /metrics, /healthz and the dashboard of every worker added
    sockets.py      socket options, reset, peer names, the kernel's round-trip time
    tls.py          the certificate's context, reloaded in place
    http/           the HTTP port: WebSocket, dashboard, metrics, health (its __init__ maps it)
"""
