"""Redis client factory and a ping that never raises."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def connect(url: str) -> aioredis.Redis:
    """A client; no I/O until first use. Short socket timeouts so outages surface quickly."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        health_check_interval=15,
    )


async def ping(client: aioredis.Redis) -> bool:
    try:
        async with asyncio.timeout(3):
            return bool(await client.ping())
    except Exception:
        return False
