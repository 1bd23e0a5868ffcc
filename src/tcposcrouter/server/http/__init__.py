"""The HTTP port (55557 by default), on aiohttp: OSC over WebSocket, the dashboard, metrics, health
and the browser client. One line a module:

    port.py              HttpPort: the routes, the listening sites, start and stop
    door.py              HttpDoor in front of every connection; Entrance, the doors of one
                         port; GuardedSite, aiohttp's site with a door on each connection
    head_check.py        a request head checked before aiohttp reads it (pure)
    waiting.py           WaitingPool: connections not yet a WebSocket, capped (pure)
    frame_guard.py       a WebSocket client's frame headers, refused where RFC 6455 says (pure)
    websocket.py         one /osc WebSocket: feeds the hub, is the hub's Sink
    live.py              the dashboard's /live socket: viewers and the views pushed to them
    page_login.py        the dashboard's logins, throttled like registers (pure)
    dashboard.py         traffic sampled once a second, and the dashboard's views (pure)
    metrics.py           the Prometheus collector over the router's statistics
    security_headers.py  the security headers every page carries
"""
