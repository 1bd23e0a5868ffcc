"""Before a node joins: is this Redis, does it take our password, and is no other live node
running under our name? (docs/cluster.md, "When the cluster is misconfigured").

A misconfiguration is final, and the router stops with a clear message instead of running
"degraded" for ever: a wrong or missing password, a server that does not speak Redis, another
node alive under this `--node-id`. A Redis that is merely not up yet (connection refused, no
route, no answer in time: a restart, a frozen server) is not: the node starts degraded and
keeps trying, as before.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    InvalidResponse,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import ClusterRefused
from .store import Keys

__all__ = ["check_before_joining"]


async def check_before_joining(
    url: str, shown_url: str, keys: Keys, node: str, timeout: float, heartbeat: float
) -> None:
    """Raise `ClusterRefused` for a misconfiguration; return if the node may join, or if Redis
    is only not there (yet): the link then starts degraded and keeps trying."""
    client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        try:
            await client.ping()
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError) as error:
            raise ClusterRefused(
                f"Redis at {shown_url} refused the password ({error}): check --cluster"
            ) from None
        except ResponseError as error:
            text = str(error)
            if any(word in text for word in ("AUTH", "WRONGPASS", "password")):  # NOAUTH too
                raise ClusterRefused(
                    f"Redis at {shown_url} refused the password ({text}): check --cluster"
                ) from None
            raise ClusterRefused(f"{shown_url} answered as no Redis does: {text}") from None
        except InvalidResponse as error:
            raise ClusterRefused(f"{shown_url} is not a Redis server ({error})") from None
        except (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError) as error:
            if _speaks_another_protocol(error):
                raise ClusterRefused(f"{shown_url} is not a Redis server ({error})") from None
            return  # not up yet, or not answering: degraded, and try again
        await _nobody_else_named(client, keys, node, heartbeat)
    except RedisError as error:
        raise ClusterRefused(f"{shown_url} answered as no Redis does: {error}") from None
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def _speaks_another_protocol(error: BaseException) -> bool:
    # redis-py wraps a reply it cannot parse ("Protocol Error: H, b'TTP/1.1 400 …'") in a
    # ConnectionError.
    return "Protocol Error" in str(error) or "protocol error" in str(error)


async def _nobody_else_named(
    client: aioredis.Redis, keys: Keys, node: str, heartbeat: float
) -> None:
    """Another node alive under `node` renews its heartbeat key every `heartbeat` seconds:
    watch it for a heartbeat and a half. A key left by a node that died (a worker being
    replaced) only runs out: 1.5 heartbeats less; a renewed one has lost at most one."""
    key = keys.alive(node)
    before = await client.pttl(key)
    if before < 0:
        return  # no key (-2) or no expiry (-1, not ours): nobody alive under this name
    await asyncio.sleep(heartbeat * 1.5)
    after = await client.pttl(key)
    if after >= before - 1000 * heartbeat:
        raise ClusterRefused(
            f"another node is running as {node!r} in this cluster: give each node its own --node-id"
        )
