"""The Redis delayed queue: a sorted set of job ids scored by due time (epoch seconds).

Claiming is one Lua script that moves up to N due ids to an in-flight set scored by their
lease expiry. A claimed id leaves in-flight only through `ack`, after the dispatch is
durable; `requeue_expired` returns ids whose lease ran out. A small "wake" list lets a
writer of an earlier-due job wake a sleeping dispatcher.

Redis answering nothing (refused, dropped, timed out, still loading its data after a
restart) is raised as `StoreUnavailable("redis")`, like every store outage in Herald.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from herald.shared.errors import StoreUnavailable
from herald.shared.infra.names import Names

P = ParamSpec("P")
T = TypeVar("T")


def _outage(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable("redis", str(exc)) from exc

    return wrapped


_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {}
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[2], ARGV[2], due[i])
  redis.call('HSET', KEYS[3], due[i], due[i + 1])
  out[#out + 1] = due[i]
  out[#out + 1] = due[i + 1]
end
if #due > 0 then
  local ids = {}
  for i = 1, #due, 2 do ids[#ids + 1] = due[i] end
  for i = 1, #ids, 5000 do
    redis.call('ZREM', KEYS[1], unpack(ids, i, math.min(i + 4999, #ids)))
  end
end
return out
"""

_REQUEUE_EXPIRED = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(expired) do
  local due = redis.call('HGET', KEYS[3], id)
  redis.call('ZADD', KEYS[1], 'NX', due or ARGV[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #expired
"""

_ACK = """
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ARGV
"""


@dataclass(frozen=True)
class Claimed:
    job_id: str
    due: float


class DelayedQueue:
    def __init__(self, client: aioredis.Redis, names: Names) -> None:
        self._r = client
        self.queue_key = names.key("queue")
        self.inflight_key = names.key("inflight")
        self.due_key = names.key("inflight-due")
        self.wake_key = names.key("wake")
        self._claim = client.register_script(_CLAIM)
        self._requeue = client.register_script(_REQUEUE_EXPIRED)
        self._ack = client.register_script(_ACK)

    @_outage
    async def add(self, items: dict[str, float], *, wake: bool = True) -> None:
        """Put job ids in the queue at their due times (replacing an earlier score)."""
        if not items:
            return
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zadd(self.queue_key, items)
            if wake:
                pipe.lpush(self.wake_key, "1")
                pipe.ltrim(self.wake_key, 0, 0)
            await pipe.execute()

    @_outage
    async def remove(self, job_ids: list[str]) -> None:
        if job_ids:
            await self._r.zrem(self.queue_key, *job_ids)

    @_outage
    async def claim(
        self, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[Claimed]:
        now = time.time() if now is None else now
        raw: list[Any] = await self._claim(
            keys=[self.queue_key, self.inflight_key, self.due_key],
            args=[repr(now), repr(now + lease_seconds), limit],
        )
        return [Claimed(raw[i].decode(), float(raw[i + 1])) for i in range(0, len(raw), 2)]

    @_outage
    async def ack(self, job_ids: list[str]) -> None:
        for start in range(0, len(job_ids), 5000):
            chunk = job_ids[start : start + 5000]
            await self._ack(keys=[self.inflight_key, self.due_key], args=chunk)

    @_outage
    async def requeue_expired(self, limit: int = 10_000, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(
            await self._requeue(
                keys=[self.queue_key, self.inflight_key, self.due_key], args=[repr(now), limit]
            )
        )

    @_outage
    async def next_due(self) -> float | None:
        first = await self._r.zrange(self.queue_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    @_outage
    async def wait_for_wake(self, timeout: float) -> bool:
        """Block until a writer signals an earlier job (True) or about `timeout` seconds
        pass (False; Redis times a blocked call out at its own clock tick, ~100 ms)."""
        return await self._r.blpop([self.wake_key], timeout=max(timeout, 0.01)) is not None

    @_outage
    async def held(self, job_ids: list[str]) -> set[str]:
        """Which of these ids Redis holds (queued or in flight)."""
        if not job_ids:
            return set()
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zmscore(self.queue_key, job_ids)
            pipe.zmscore(self.inflight_key, job_ids)
            queued, inflight = await pipe.execute()
        return {
            j
            for j, a, b in zip(job_ids, queued, inflight, strict=True)
            if a is not None or b is not None
        }

    @_outage
    async def depth(self) -> int:
        return int(await self._r.zcard(self.queue_key))

    @_outage
    async def due_backlog(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(await self._r.zcount(self.queue_key, "-inf", now)) + int(
            await self._r.zcard(self.inflight_key)
        )
