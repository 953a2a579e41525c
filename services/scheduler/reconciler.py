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

from herald.shared.infra.process import repeat
from herald.shared.infra.runtime import Runtime

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
        async with self.rt.db.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (_LOCK,))
            got = await cur.fetchone()
            if not got or not got["ok"]:
                return {}
            try:
                return {
                    "paged_in": await self.page_in(),
                    "restored": await self.restore(),
                    "unclaimed": await self.requeue_unclaimed(),
                    "stuck": await self.requeue_stuck(),
                }
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK,))

    async def page_in(self) -> int:
        total = 0
        horizon = self.rt.settings.redis_horizon_seconds
        while True:
            rows = await self.rt.db.fetch(
                "UPDATE jobs SET queued = true WHERE id IN ("
                " SELECT id FROM jobs WHERE status IN ('SCHEDULED', 'RETRY_SCHEDULED')"
                " AND NOT queued AND next_attempt_at <= now() + %s * interval '1 s'"
                " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, next_attempt_at",
                (horizon, self.page),
            )
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
            rows = await self.rt.db.fetch(
                "SELECT id, next_attempt_at FROM jobs WHERE status IN ('SCHEDULED',"
                " 'RETRY_SCHEDULED') AND queued AND id > %s"
                " AND next_attempt_at <= now() + %s * interval '1 s' ORDER BY id LIMIT %s",
                (after, horizon, self.page),
            )
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
        rows = await self.rt.db.fetch(
            # The dispatcher's mark makes the same test before it dispatches them again. As
            # below, the due instant (never after the dispatch) lets the index narrow it.
            "SELECT id FROM jobs j WHERE next_attempt_at < now() - %(lease)s * interval '1 s'"
            " AND status = 'IN_PROGRESS' AND dispatched_at < now() - %(lease)s * interval '1 s'"
            " AND NOT EXISTS (SELECT 1 FROM publish_claims c"
            "   WHERE c.job_id = j.id AND c.attempt = j.attempt_count)"
            " ORDER BY dispatched_at LIMIT %(page)s",
            {"lease": self.rt.settings.lease_seconds, "page": self.page},
        )
        return await self._requeue([str(r["id"]) for r in rows], "no publisher claimed it")

    async def requeue_stuck(self) -> int:
        rows = await self.rt.db.fetch(
            # An IN_PROGRESS job keeps its attempt's due instant, never later than its
            # dispatch: the first condition lets the open-jobs index narrow the search.
            "SELECT id FROM jobs WHERE next_attempt_at < now() - %(stuck)s * interval '1 s'"
            " AND status = 'IN_PROGRESS' AND dispatched_at < now() - %(stuck)s * interval '1 s'"
            " ORDER BY dispatched_at LIMIT %(page)s",
            {"stuck": self.rt.settings.stuck_after_seconds, "page": self.page},
        )
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
