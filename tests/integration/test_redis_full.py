"""Redis refusing writes for a state it will leave (full under `noeviction`, here) is an
outage like any other: a change committed in Postgres meanwhile is answered, never a 500
that says it failed when it did not. (Redis keeps the old due instant; when it comes, the
dispatcher's mark refuses the job as not due and drops it from Redis, and the reconciler puts
it back at the new one.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import redis.exceptions

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.ops_server import Health
from herald.shared.infra.process import standard_checks
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from tests.support.helpers import sandbox_connections

pytestmark = pytest.mark.integration


@asynccontextmanager
async def redis_full(rt: Runtime) -> AsyncIterator[None]:
    """Redis with no room for a write (maxmemory below its use, no eviction), then as it
    was."""
    before = await rt.redis.config_get("maxmemory", "maxmemory-policy")
    await rt.redis.config_set("maxmemory-policy", "noeviction")
    await rt.redis.config_set("maxmemory", "1")
    try:
        yield
    finally:
        await rt.redis.config_set("maxmemory", before["maxmemory"])
        await rt.redis.config_set("maxmemory-policy", before["maxmemory-policy"])


async def test_a_change_while_redis_is_full_is_answered_not_a_500(
    rt: Runtime,
) -> None:
    (connection,) = await sandbox_connections(rt, 1)
    body = {
        "platform": "sandbox",
        "connection_id": connection,
        "media_asset_ids": ["https://cdn.example.com/a.jpg"],
        "caption": "while redis is full",
        "scheduled_at": (now_utc() + timedelta(minutes=5)).isoformat(),
    }
    job_id = (await rt.jobs().schedule(ADMIN, body)).body["id"]
    later = now_utc() + timedelta(minutes=10)
    async with redis_full(rt):
        with pytest.raises(redis.exceptions.OutOfMemoryError):  # what a write gets now
            await rt.redis.set(rt.names.key("probe"), "x")
        changed = await rt.jobs().reschedule(ADMIN, job_id, {"scheduled_at": later.isoformat()})
        assert changed["scheduled_at"] == later.isoformat().replace("+00:00", "Z")
    row = await rt.db.fetchone("SELECT scheduled_at, status FROM jobs WHERE id = %s", (job_id,))
    assert row is not None and (row["scheduled_at"], row["status"]) == (later, "SCHEDULED")


async def test_readiness_says_redis_is_unavailable_while_it_refuses_writes(rt: Runtime) -> None:
    """`/readyz` of every process: Redis still answers PING when full, but takes no write."""
    health = Health()
    standard_checks(health, rt)
    assert (await health.ready())["redis"] is True
    async with redis_full(rt):
        assert await rt.redis.ping()
        assert (await health.ready()) == {"postgres": True, "redis": False, "kafka": True}
    assert (await health.ready())["redis"] is True
