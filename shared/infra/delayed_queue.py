"""The Redis delayed queue: job ids by due time (epoch seconds), one sorted set per tenant,
claimed fairly between tenants (decision 0023).

- `due:<tenant>`: that tenant's queued job ids, scored by due time;
- `due-tenants`: every tenant with queued jobs, scored by its earliest due job, or, while it
  still has due jobs after a claim served it, by that claim's time (so tenants the claim
  did not reach come first next time: round robin even with more due tenants than a batch);
- `due-tenant-of`: job id → tenant, for every queued id (remove, missing and depth use it).

Claiming is one Lua script: it takes the due tenants, earliest first, and gives each an
equal share of the batch, handing what a tenant could not use to the others, so every due
tenant gets into a batch however many jobs another has due. The claimed ids move to an
in-flight set scored by their lease expiry (`inflight-due` keeps "due|tenant" for each);
an id leaves in-flight only through `ack`, after the dispatch is durable;
`requeue_expired` returns ids whose lease ran out to their tenant. A small "wake" list lets
a writer of an earlier-due job wake a sleeping dispatcher.

The single sorted set `queue` of earlier versions is read by nothing: the reconciler puts
its jobs back from Postgres, then deletes it (`drop_legacy`).

Redis answering nothing (refused, dropped, timed out, still loading its data after a
restart) is raised as `StoreUnavailable("redis")`, like every store outage in Herald.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, ParamSpec, TypeVar

import redis.asyncio as aioredis

from herald.shared.errors import StoreUnavailable
from herald.shared.infra import redis_client
from herald.shared.infra.names import Names

P = ParamSpec("P")
T = TypeVar("T")


def _outage(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except redis_client.AWAY as exc:
            raise StoreUnavailable("redis", str(exc)) from exc

    return wrapped


# Every script: KEYS[1] due-tenants, KEYS[2] due-tenant-of; ARGV[1] the per-tenant prefix.
# `rescore` sets a tenant's place in due-tenants from its earliest job (or drops it);
# `lower` only ever moves it earlier (an add keeps the place a claim gave it).
_COMMON = """
local prefix = ARGV[1]
local function earliest(t)
  local first = redis.call('ZRANGE', prefix .. t, 0, 0, 'WITHSCORES')
  return first[2]
end
local function rescore(t)
  local e = earliest(t)
  if e then redis.call('ZADD', KEYS[1], e, t) else redis.call('ZREM', KEYS[1], t) end
end
local function lower(t)
  local e = earliest(t)
  if e then redis.call('ZADD', KEYS[1], 'LT', e, t) end
end
local function zrem_all(key, ids)
  for i = 1, #ids, 5000 do
    redis.call('ZREM', key, unpack(ids, i, math.min(i + 4999, #ids)))
  end
end
"""

# ARGV[2..]: id, tenant, due triples (at most 2,000: `add` sends them in chunks, so the
# `unpack`s stay under Lua's 8,000 values). KEYS[3], when given: the wake list, pushed to
# once the ids are in (in the same round trip). An id new to the queue (the common case)
# goes in with its tenant's others in one ZADD, and into due-tenant-of with all of them in
# one HSET: a call per id was most of the script's time.
_ADD = (
    _COMMON
    + """
local ids = {}
for i = 2, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local olds = redis.call('HMGET', KEYS[2], unpack(ids))
local touched, moved, fresh, owners = {}, {}, {}, {}
for n, id in ipairs(ids) do
  local t, at, old = ARGV[3 * n], ARGV[3 * n + 1], olds[n]
  if old == t then
    local changed = redis.call('ZADD', prefix .. t, 'CH', at, id) == 1
    if changed then touched[t] = 'rescore' else touched[t] = touched[t] or 'lower' end
  else
    if old then
      redis.call('ZREM', prefix .. old, id)
      moved[old] = true
    end
    local batch = fresh[t]
    if not batch then batch = {}; fresh[t] = batch end
    batch[#batch + 1] = at
    batch[#batch + 1] = id
    owners[#owners + 1] = id
    owners[#owners + 1] = t
    touched[t] = touched[t] or 'lower'
  end
end
for t, batch in pairs(fresh) do redis.call('ZADD', prefix .. t, unpack(batch)) end
if #owners > 0 then redis.call('HSET', KEYS[2], unpack(owners)) end
for t in pairs(moved) do rescore(t) end
for t, how in pairs(touched) do
  if how == 'rescore' then rescore(t) else lower(t) end
end
if KEYS[3] then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return 0
"""
)

# ARGV[2..]: ids.
_REMOVE = (
    _COMMON
    + """
local touched = {}
for i = 2, #ARGV do
  local t = redis.call('HGET', KEYS[2], ARGV[i])
  if t then
    redis.call('ZREM', prefix .. t, ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    touched[t] = true
  end
end
for t in pairs(touched) do rescore(t) end
return 0
"""
)

# KEYS[3] inflight, KEYS[4] inflight-due; ARGV[2] now, ARGV[3] lease expiry, ARGV[4] limit,
# ARGV[5] the horizon (ids due by then are claimed), ARGV[6] nothing is claimed unless an id
# is due by this instant.
_CLAIM = (
    _COMMON
    + """
local now, room, horizon = ARGV[2], tonumber(ARGV[4]), ARGV[5]
if #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[6], 'LIMIT', 0, 1) == 0 then
  return {}
end
local due_tenants = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon, 'LIMIT', 0, room)
local out, served, active = {}, {}, due_tenants
while room > 0 and #active > 0 do
  local share = math.max(1, math.floor(room / #active))
  local again = {}
  for _, t in ipairs(active) do
    if room <= 0 then break end
    local take = math.min(share, room)
    local due = redis.call(
      'ZRANGEBYSCORE', prefix .. t, '-inf', horizon, 'WITHSCORES', 'LIMIT', 0, take)
    local ids, leases, held = {}, {}, {}
    for i = 1, #due, 2 do
      ids[#ids + 1] = due[i]
      leases[#leases + 1] = ARGV[3]
      leases[#leases + 1] = due[i]
      held[#held + 1] = due[i]
      held[#held + 1] = due[i + 1] .. '|' .. t
      out[#out + 1] = due[i]
      out[#out + 1] = due[i + 1]
    end
    for i = 1, #ids, 2000 do
      local last = math.min(i + 1999, #ids)
      redis.call('ZADD', KEYS[3], unpack(leases, 2 * i - 1, 2 * last))
      redis.call('HSET', KEYS[4], unpack(held, 2 * i - 1, 2 * last))
      redis.call('HDEL', KEYS[2], unpack(ids, i, last))
    end
    zrem_all(prefix .. t, ids)
    room = room - #ids
    served[t] = true
    if #ids == take then again[#again + 1] = t end
  end
  active = again
end
for t in pairs(served) do
  local e = earliest(t)
  if not e then redis.call('ZREM', KEYS[1], t)
  elseif tonumber(e) <= tonumber(now) then redis.call('ZADD', KEYS[1], now, t)
  else redis.call('ZADD', KEYS[1], e, t) end
end
return out
"""
)

# KEYS[3] inflight, KEYS[4] inflight-due; ARGV[2] now, ARGV[3] limit. An in-flight id
# without a tenant (claimed by an older version) just leaves: the reconciler re-queues its
# job from Postgres.
_REQUEUE_EXPIRED = (
    _COMMON
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(expired) do
  local held = redis.call('HGET', KEYS[4], id) or ''
  local due, t = string.match(held, '^([^|]*)|(.*)$')
  if t then
    if redis.call('ZADD', prefix .. t, 'NX', due, id) == 1 then
      redis.call('HSET', KEYS[2], id, t)
      lower(t)
    end
  end
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
return #expired
"""
)

_ACK = """
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ARGV
"""

# KEYS[1] due-tenants; ARGV[1] the per-tenant prefix, ARGV[2] now.
_DUE_COUNT = """
local n = 0
for _, t in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])) do
  n = n + redis.call('ZCOUNT', ARGV[1] .. t, '-inf', ARGV[2])
end
return n
"""


class Due(NamedTuple):
    """Where a queued job goes: its tenant's set, at its due time (epoch seconds)."""

    tenant: str
    at: float


@dataclass(frozen=True)
class Claimed:
    job_id: str
    due: float


# KEYS[1] due-tenant-of, KEYS[2] inflight; ARGV[1] job ids joined by ",". Answers the ids
# neither holds.
_MISSING = """
local ids = {}
for id in string.gmatch(ARGV[1], '[^,]+') do ids[#ids + 1] = id end
local out = {}
if #ids == 0 then return out end
local queued = redis.call('HMGET', KEYS[1], unpack(ids))
local inflight = redis.call('ZMSCORE', KEYS[2], unpack(ids))
for i = 1, #ids do
  if not queued[i] and not inflight[i] then out[#out + 1] = ids[i] end
end
return out
"""


class DelayedQueue:
    def __init__(self, client: aioredis.Redis, names: Names) -> None:
        self._r = client
        self.tenants_key = names.key("due-tenants")
        self.tenant_of_key = names.key("due-tenant-of")
        self.tenant_prefix = names.key("due:")
        self.inflight_key = names.key("inflight")
        self.due_key = names.key("inflight-due")
        self.wake_key = names.key("wake")
        self.legacy_key = names.key("queue")  # the single sorted set of earlier versions
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._claim = client.register_script(_CLAIM)
        self._requeue = client.register_script(_REQUEUE_EXPIRED)
        self._ack = client.register_script(_ACK)
        self._due_count = client.register_script(_DUE_COUNT)
        self._missing = client.register_script(_MISSING)

    def tenant_key(self, tenant: str) -> str:
        return self.tenant_prefix + tenant

    @property
    def _queue_keys(self) -> list[str]:
        return [self.tenants_key, self.tenant_of_key, self.inflight_key, self.due_key]

    @_outage
    async def add(self, items: Mapping[str, Due], *, wake: bool = True) -> None:
        """Put job ids in their tenants' queues at their due times (replacing an earlier
        score); with `wake`, the last script call wakes a sleeping dispatcher too."""
        if not items:
            return
        entries = list(items.items())
        for start in range(0, len(entries), 2000):
            args: list[Any] = [self.tenant_prefix]
            for job_id, due in entries[start : start + 2000]:
                args += [job_id, due.tenant, repr(due.at)]
            keys = self._queue_keys[:2]
            if wake and start + 2000 >= len(entries):
                keys = [*keys, self.wake_key]
            await self._add(keys=keys, args=args)

    @_outage
    async def remove(self, job_ids: list[str]) -> None:
        for start in range(0, len(job_ids), 5000):
            chunk = job_ids[start : start + 5000]
            await self._remove(keys=self._queue_keys[:2], args=[self.tenant_prefix, *chunk])

    @_outage
    async def claim(
        self, limit: int, lease_seconds: float, now: float | None = None, *, ahead: float = 0.0
    ) -> list[Claimed]:
        """Up to `limit` ids due by `now + ahead`, shared equally between the tenants that have
        due jobs; none until one is due by `now + ahead / 2`, so that a claim of jobs not yet
        due takes at least half a lead's worth of them, not each as it comes into the lead."""
        now = time.time() if now is None else now
        args = [now, now + lease_seconds, limit, now + ahead, now + ahead / 2]
        raw: list[Any] = await self._claim(
            keys=self._queue_keys, args=[self.tenant_prefix, *map(repr, args)]
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
            await self._requeue(keys=self._queue_keys, args=[self.tenant_prefix, repr(now), limit])
        )

    @_outage
    async def next_due(self) -> float | None:
        first = await self._r.zrange(self.tenants_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    @_outage
    async def wait_for_wake(self, timeout: float) -> bool:
        """Block until a writer signals an earlier job (True) or about `timeout` seconds
        pass (False; Redis times a blocked call out at its own clock tick, ~100 ms)."""
        return await self._r.blpop([self.wake_key], timeout=max(timeout, 0.01)) is not None

    @_outage
    async def missing(self, job_ids: list[str]) -> list[str]:
        """Which of these ids Redis holds neither queued nor in flight, in their order. A
        reconcile pass asks this of every waiting job of a backlog: the ids go as one
        argument and only the missing come back (building an argument per id was most of
        the pass), a thousand at a time (a script call holds Redis for about a
        millisecond, so a claim never waits long behind one). Job ids hold no comma."""
        out: list[str] = []
        for start in range(0, len(job_ids), 1000):
            packed = ",".join(job_ids[start : start + 1000])
            raw = await self._missing(keys=[self.tenant_of_key, self.inflight_key], args=[packed])
            out += [r.decode() for r in raw]
        return out

    async def held(self, job_ids: list[str]) -> set[str]:
        """Which of these ids Redis holds (queued or in flight)."""
        return set(job_ids).difference(await self.missing(job_ids))

    @_outage
    async def depth(self) -> int:
        return int(await self._r.hlen(self.tenant_of_key))

    @_outage
    async def due_backlog(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        due = await self._due_count(keys=[self.tenants_key], args=[self.tenant_prefix, repr(now)])
        return int(due) + int(await self._r.zcard(self.inflight_key))

    @_outage
    async def drop_legacy(self) -> bool:
        """Delete the single sorted set of earlier versions (once the reconciler has put its
        jobs back from Postgres); answers whether there was one."""
        return bool(await self._r.unlink(self.legacy_key))
