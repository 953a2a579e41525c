"""The per-account token bucket in Redis (shared by every publisher copy)."""

from __future__ import annotations

import asyncio

import pytest

from herald.services.publisher.platforms.instagram.plugin import Instagram
from herald.services.publisher.rate_limiter import RateLimiter, limit_for
from herald.shared.domain.requests import Connection
from herald.shared.infra.runtime import Runtime

pytestmark = pytest.mark.integration


def connection(cid: str, platform: str = "sandbox", **metadata: object) -> Connection:
    return Connection(
        id=cid, tenant_id="t", platform=platform, name="n", status="active", metadata=dict(metadata)
    )


def test_limits_per_platform() -> None:
    assert limit_for("sandbox", {}) is None  # unlimited by default
    assert limit_for("sandbox", {"rate_per_second": 0}) is None
    sandbox = limit_for("sandbox", {"rate_per_second": 3})
    assert sandbox is not None and (sandbox.rate_per_second, sandbox.burst) == (3.0, 3.0)
    limited = limit_for("sandbox", {"rate_per_second": 0.5, "rate_burst": 4})
    assert limited is not None and (limited.rate_per_second, limited.burst) == (0.5, 4.0)
    assert limit_for("instagram", {}) == Instagram.rate_limit


async def test_a_burst_beyond_the_bucket_is_refused_with_a_retry_after(rt: Runtime) -> None:
    limiter = RateLimiter(rt.redis, rt.names, max_wait=0.0)  # never wait: answer retry-after
    slow = connection("c1", rate_per_second=0.5, rate_burst=2)
    first = [await limiter.acquire(slow) for _ in range(2)]
    assert all(a.retry_after is None and a.waited == 0 for a in first)  # the burst
    third = await limiter.acquire(slow)
    assert third.retry_after is not None and 1 <= third.retry_after <= 2
    other = await limiter.acquire(connection("c2", rate_per_second=0.5, rate_burst=2))
    assert other.retry_after is None  # another account has a bucket of its own
    assert await rt.redis.exists(rt.names.key("rl:sandbox:c1"))


async def test_two_connections_to_one_instagram_account_share_its_bucket(rt: Runtime) -> None:
    limiter = RateLimiter(rt.redis, rt.names, max_wait=0.0)
    burst = int(Instagram.rate_limit.burst) if Instagram.rate_limit else 0
    one, two = (connection(c, "instagram", instagramBusinessAccountId="1784") for c in "ab")
    taken = [await limiter.acquire(one if i % 2 else two) for i in range(burst)]
    assert all(a.retry_after is None for a in taken)
    assert (await limiter.acquire(one)).retry_after is not None  # the account's, not yours
    other = connection("c", "instagram", instagramBusinessAccountId="1785")
    assert (await limiter.acquire(other)).retry_after is None


async def test_a_burst_waits_for_reserved_slots(rt: Runtime) -> None:
    limiter = RateLimiter(rt.redis, rt.names, max_wait=5.0)
    fast = connection("c3", rate_per_second=50, rate_burst=1)
    admissions = await asyncio.gather(*(limiter.acquire(fast) for _ in range(5)))
    waits = sorted(a.waited for a in admissions)
    assert all(a.retry_after is None for a in admissions)  # nobody was turned away
    assert waits[0] == 0 and all(w > 0 for w in waits[1:])  # the rest waited their turn
    assert len(set(waits)) == len(waits)  # each its own slot, none polled for it


async def test_an_unlimited_sandbox_never_touches_redis(rt: Runtime) -> None:
    limiter = RateLimiter(rt.redis, rt.names)
    for _ in range(3):
        admission = await limiter.acquire(connection("c4"))
        assert admission.waited == 0 and admission.retry_after is None
    assert not await rt.redis.exists(rt.names.key("rl:sandbox:c4"))
