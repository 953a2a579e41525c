"""A per-account rate limiter shared by every publisher copy: one token bucket per
(platform, account) in Redis, updated by one Lua script on Redis's clock. The account is the
connection, except on Instagram, where it is the Instagram account: two connections to one
account share its budget (Graph's limits are per account).

An attempt takes one token before its platform call. The bucket hands out *reservations*:
a caller that finds it empty is given the time its token will be there and sleeps (an async
sleep; the attempt is not burnt). Reservations queue fairly across every copy, each waiting
caller costs one Redis round trip, and none polls. When the wait would exceed `max_wait`
nothing is reserved and the attempt answers `rate_limited` with that retry-after instead of
holding an in-flight slot for minutes (a `rate_limited` requeue does not use up attempts).

Each platform declares its limit and whose budget a call spends (`Platform.rate_limit`,
`limit_for`, `account_key`), e.g.:
- instagram: 1 attempt per second per account, bursts of 5. An attempt makes several Graph
  calls (quota, container, status polls, publish, permalink), and Graph's own limits are
  much wider (200 calls per hour per account times impressions) while the publishing quota
  (`content_publishing_limit`, 50 posts per 24 h) is checked by the publisher itself; the
  bucket smooths bursts so they never reach Graph's throttles.
- sandbox: unlimited (no Redis call at all) unless the connection's metadata sets
  `rate_per_second` (and optionally `rate_burst`, default max(1, rate)).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from herald.shared.domain.requests import Connection
from herald.shared.errors import StoreUnavailable
from herald.shared.infra import metrics, redis_client
from herald.shared.infra.names import Names
from herald.shared.platforms.plugin import RateLimit
from herald.shared.platforms.registry import platforms

# KEYS[1] bucket; ARGV rate (tokens/s), burst, max wait (s). Returns the wait in
# microseconds: 0 = go now, > 0 = reserved (sleep that long), -N = not reserved (N = wait).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
end
if wait > max_wait then
  return -math.ceil(wait * 1000000)
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return math.ceil(wait * 1000000)
"""


def limit_for(platform: str, metadata: dict[str, Any]) -> RateLimit | None:
    """The connection's limit, as its platform declares it."""
    return platforms()[platform].limit_for(metadata)


def account_of(connection: Connection) -> str:
    """Whose budget a call spends (the Instagram account, else the connection)."""
    return platforms()[connection.platform].account_key(connection)


@dataclass(frozen=True)
class Admission:
    """`waited` seconds slept for a token; `retry_after` set when no token was taken."""

    waited: float = 0.0
    retry_after: float | None = None


class RateLimiter:
    def __init__(self, client: aioredis.Redis, names: Names, *, max_wait: float = 30.0) -> None:
        self.client = client
        self.names = names
        self.max_wait = max_wait
        self._script = client.register_script(_TAKE)

    async def acquire(self, connection: Connection) -> Admission:
        """Wait for this account's next token (async sleep), or answer the retry-after when
        that would be longer than `max_wait`. Raises StoreUnavailable when Redis is away."""
        limit = limit_for(connection.platform, connection.metadata)
        if limit is None:
            return Admission()
        key = self.names.key(f"rl:{connection.platform}:{account_of(connection)}")
        try:
            micros = int(
                await self._script(
                    keys=[key], args=[limit.rate_per_second, limit.burst, self.max_wait]
                )
            )
        except redis_client.AWAY as exc:
            raise StoreUnavailable("redis", str(exc)) from exc
        if micros == 0:
            return Admission()
        metrics.RATE_LIMITED.labels(connection.platform).inc()
        if micros < 0:
            return Admission(retry_after=math.ceil(-micros / 1_000_000))
        waited = micros / 1_000_000
        await asyncio.sleep(waited)
        return Admission(waited=waited)
