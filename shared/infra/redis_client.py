"""Redis client factory, what "Redis is away" means, and a write probe that never raises."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

# Redis did not take the command, for a state it leaves on its own or an operator's fix:
# refused, dropped or timed out, still loading its data, full under `noeviction` (OOM), a
# replica after a failover (READONLY), no master (MASTERDOWN). Callers treat these as a
# store outage (503, retry, the reconciler restores); any other error is a bug to see.
AWAY: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
)


def connect(url: str) -> aioredis.Redis:
    """A client; no I/O until first use. Short socket timeouts so outages surface quickly."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        health_check_interval=15,
    )


async def takes_writes(client: aioredis.Redis, probe_key: str) -> bool:
    """Whether Redis takes a write now; never raises. A PING is answered by a Redis that
    refuses every write Herald makes (full under `noeviction`, a read-only replica), so the
    probe writes `probe_key` (gone after a minute)."""
    try:
        async with asyncio.timeout(3):
            return bool(await client.set(probe_key, b"1", px=60_000))
    except Exception:
        return False
