"""The reconciler: Postgres is the truth, Redis a cache of what is due soon.

- pages in waiting jobs that came within the Redis horizon;
- puts back waiting jobs Redis does not hold (a crash between the two writes, lost data)
  once they are due within `RESTORE_AHEAD` passes: in time for their due instant, and a pass
  reads only the jobs due soon, not every job of the horizon (100,000 waiting jobs cost an
  idle scheduler 5 % of a core and Postgres 2 % when every pass read them all);
- re-queues IN_PROGRESS jobs whose attempt no publisher claimed once their lease has passed
  (a dispatcher killed between its mark and its produce, with the Redis lease lost too):
  nothing was called for that attempt, and the claims make a second request for it safe;
- re-queues IN_PROGRESS jobs older than HERALD_STUCK_AFTER_SECONDS (same attempt number):
  those a publisher claimed and then left without a result;
- deletes the delayed queue of earlier versions (one sorted set for every tenant): the
  passes above put its jobs in the queues by tenant, each in time (decision 0023).
One scheduler instance reconciles at a time (advisory lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from herald.shared.infra.db import locks
from herald.shared.infra.db.pool import Row
from herald.shared.infra.delayed_queue import Due
from herald.shared.infra.process import repeat
from herald.shared.infra.runtime import Runtime
from herald.shared.stores import jobs

log = logging.getLogger(__name__)
_LOCK = "herald-reconciler"
RESTORE_AHEAD = 3  # reconcile passes: a job Redis lacks is back a pass or two before it is due


class Reconciler:
    def __init__(self, rt: Runtime, *, interval: float = 5.0, page: int = 5000) -> None:
        self.rt = rt
        self.interval = interval
        self.page = page

    async def run(self, stopping: asyncio.Event) -> None:
        await repeat(
            stopping, self.interval, self.reconcile_once, failed="reconcile failed; retrying"
        )

    async def reconcile_once(self) -> dict[str, int]:
        async with locks.held(self.rt.db, _LOCK) as mine:
            if not mine:
                return {}
            return {
                "paged_in": await self.page_in(),
                "restored": await self.restore(),
                "unclaimed": await self.requeue_unclaimed(),
                "stuck": await self.requeue_stuck(),
                # Every job the single sorted set of earlier versions held is safe by now:
                # waiting ones restored (or, due later, restored once due soon: Postgres has
                # them), IN_PROGRESS ones re-queued as unclaimed or stuck.
                "legacy_dropped": int(await self.rt.queue.drop_legacy()),
            }

    async def page_in(self) -> int:
        total = 0
        horizon = self.rt.settings.redis_horizon_seconds
        while True:
            rows = await jobs.page_in(self.rt.db, horizon=horizon, limit=self.page)
            if not rows:
                return total
            await self.rt.queue.add(jobs.queue_entries(rows))
            total += len(rows)
            log.info("paged jobs into the delayed queue", extra={"count": len(rows)})

    async def restore(self) -> int:
        restored = 0
        start: tuple[datetime, str] | None = None  # where the next page starts
        within = min(self.rt.settings.redis_horizon_seconds, RESTORE_AHEAD * self.interval)
        while True:
            ids, start = await jobs.queued_due(
                self.rt.db, after=start, within=within, limit=self.page
            )
            missing = await self.rt.queue.missing(ids)
            if missing:  # read again: a dispatch may have taken them since
                due = jobs.queue_entries(await jobs.queued(self.rt.db, missing))
                await self.rt.queue.add(due)
                restored += len(due)
                log.warning("restored jobs Redis did not hold", extra={"count": len(due)})
            if start is None:
                return restored

    async def requeue_unclaimed(self) -> int:
        lease = self.rt.settings.lease_seconds
        rows = await jobs.unclaimed(self.rt.db, lease=lease, limit=self.page)
        return await self._requeue(rows, "no publisher holds it")

    async def requeue_stuck(self) -> int:
        after = self.rt.settings.stuck_after_seconds
        rows = await jobs.stuck(self.rt.db, after=after, limit=self.page)
        return await self._requeue(rows, "stuck")

    async def _requeue(self, rows: list[Row], why: str) -> int:
        """Queue these IN_PROGRESS jobs now, unless Redis holds them (a dispatch under way)."""
        if not rows:
            return 0
        tenants = {str(r["id"]): str(r["tenant_id"]) for r in rows}
        again = await self.rt.queue.missing(list(tenants))
        if again:
            now = time.time()
            await self.rt.queue.add({j: Due(tenants[j], now) for j in again})
            for job_id in again:
                log.warning("re-dispatching a job", extra={"job_id": job_id, "reason": why})
        return len(again)
