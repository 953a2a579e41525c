"""The reconciler: Postgres is the truth, Redis a cache of what is due soon.

- pages in waiting jobs that came within the Redis horizon;
- puts back waiting jobs Redis does not hold (a crash between the two writes, lost data);
- re-queues IN_PROGRESS jobs whose attempt no publisher claimed once their lease has passed
  (a dispatcher killed between its mark and its produce, with the Redis lease lost too):
  nothing was called for that attempt, and the claims make a second request for it safe;
- re-queues IN_PROGRESS jobs older than HERALD_STUCK_AFTER_SECONDS (same attempt number):
  those a publisher claimed and then left without a result.
One scheduler instance reconciles at a time (advisory lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from herald.shared.infra.db import locks
from herald.shared.infra.process import repeat
from herald.shared.infra.runtime import Runtime
from herald.shared.stores import jobs

log = logging.getLogger(__name__)
_LOCK = "herald-reconciler"


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
            }

    async def page_in(self) -> int:
        total = 0
        horizon = self.rt.settings.redis_horizon_seconds
        while True:
            rows = await jobs.page_in(self.rt.db, horizon=horizon, limit=self.page)
            if not rows:
                return total
            await self.rt.queue.add({str(r["id"]): r["next_attempt_at"].timestamp() for r in rows})
            total += len(rows)
            log.info("paged jobs into the delayed queue", extra={"count": len(rows)})

    async def restore(self) -> int:
        restored = 0
        after = "00000000-0000-0000-0000-000000000000"
        horizon = self.rt.settings.redis_horizon_seconds
        while True:
            rows = await jobs.queued_due(self.rt.db, after=after, horizon=horizon, limit=self.page)
            if not rows:
                return restored
            after = str(rows[-1]["id"])
            due: dict[str, datetime] = {str(r["id"]): r["next_attempt_at"] for r in rows}
            held = await self.rt.queue.held(list(due))
            missing = {j: d.timestamp() for j, d in due.items() if j not in held}
            if missing:
                await self.rt.queue.add(missing)
                restored += len(missing)
                log.warning("restored jobs Redis did not hold", extra={"count": len(missing)})

    async def requeue_unclaimed(self) -> int:
        lease = self.rt.settings.lease_seconds
        rows = await jobs.unclaimed(self.rt.db, lease=lease, limit=self.page)
        return await self._requeue([str(r["id"]) for r in rows], "no publisher holds it")

    async def requeue_stuck(self) -> int:
        after = self.rt.settings.stuck_after_seconds
        rows = await jobs.stuck(self.rt.db, after=after, limit=self.page)
        return await self._requeue([str(r["id"]) for r in rows], "stuck")

    async def _requeue(self, ids: list[str], why: str) -> int:
        """Queue these IN_PROGRESS jobs now, unless Redis holds them (a dispatch under way)."""
        if not ids:
            return 0
        held = await self.rt.queue.held(ids)
        again = [j for j in ids if j not in held]
        if again:
            await self.rt.queue.add({j: time.time() for j in again})
            for job_id in again:
                log.warning("re-dispatching a job", extra={"job_id": job_id, "reason": why})
        return len(again)
