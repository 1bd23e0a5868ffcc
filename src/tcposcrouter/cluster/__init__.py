"""Several router processes, on one machine or many, serving one set of groups through Redis:
`store` (keys, scripts), `wire` (what travels on pub/sub), `presence` (who is where), `node`
(the asyncio shell that ties them to a running router), `workers` (N processes on one port)."""
