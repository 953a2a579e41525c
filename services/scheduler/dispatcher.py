"""The dispatcher: claims due jobs from Redis and hands them to `publish.request`.

Per batch: claim (Lua, with lease) → mark IN_PROGRESS in Postgres (attempt + 1, status events
in the outbox) and encode each job's request → produce and wait for Kafka's acknowledgement →
ack the claim. A crash at any point leaves the claim in flight; when its lease expires the job
returns to the queue and is dispatched again with the same attempt number (the publisher
de-duplicates).

A job whose request cannot be encoded (a row an older version stored, say) is dead-lettered
on its own, in the transaction of the mark, as `permanent_error`; the rest of its batch goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from herald.services.scheduler.placement import PartitionCount, partition_for
from herald.shared import dead_letters, events, outbox
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import DeadLetterReason
from herald.shared.errors import InvalidMessage
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row, id_array
from herald.shared.infra.delayed_queue import Claimed
from herald.shared.infra.names import REQUEST, Names
from herald.shared.infra.retry import Backoff, Retry, Stopped
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs.views import JOB_COLUMNS, request_view

log = logging.getLogger(__name__)

# A heap-only update (migration 0005, decision 0011): it changes no indexed column, so it
# leaves the job's indexes alone. next_attempt_at keeps the attempt's due instant, which is
# how the reconciler finds the job if it sticks. An IN_PROGRESS job is dispatched again, with
# the same attempt, once its lease has passed while no publisher claimed that attempt (its
# request may never have reached Kafka), or after HERALD_STUCK_AFTER_SECONDS in any case.
_MARK_DISPATCHED = """
WITH old AS (
    SELECT id, status FROM jobs WHERE id = ANY(%(ids)s::uuid[]) FOR UPDATE
)
UPDATE jobs SET
    attempt_count = CASE WHEN old.status = 'IN_PROGRESS' THEN jobs.attempt_count
                         ELSE jobs.attempt_count + 1 END,
    status = 'IN_PROGRESS', dispatched_at = now(), updated_at = now()
FROM old
WHERE jobs.id = old.id AND (
    (old.status IN ('SCHEDULED', 'RETRY_SCHEDULED') AND jobs.next_attempt_at <= now())
    OR (old.status = 'IN_PROGRESS' AND jobs.dispatched_at < now() - %(lease)s * interval '1 s'
        AND (NOT EXISTS (SELECT 1 FROM publish_claims c
                         WHERE c.job_id = jobs.id AND c.attempt = jobs.attempt_count)
             OR jobs.dispatched_at < now() - %(stuck)s * interval '1 s'))
)
RETURNING jobs.id, jobs.tenant_id, jobs.post_id, jobs.platform, jobs.connection_id,
    jobs.attempt_count, jobs.media_asset_ids, jobs.caption, jobs.media_type, jobs.scheduled_at,
    jobs.publish_deadline, jobs.dispatched_at, jobs.trace_id, jobs.provider_ids,
    jobs.next_attempt_at, jobs.published_at, jobs.check_only, old.status AS old_status,
    (SELECT c.placement FROM connections c WHERE c.id = jobs.connection_id) AS placement
"""


def request_value(row: Row, due: float) -> dict[str, Any]:
    return request_view(row) | {
        "due_at": events.iso(datetime.fromtimestamp(due, UTC)),
        "dispatched_at": events.iso(row["dispatched_at"]),
    }


class Dispatcher:
    def __init__(
        self, rt: Runtime, *, batch_size: int = 1000, max_sleep: float = 1.0, concurrency: int = 3
    ) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.max_sleep = max_sleep
        self.topic = rt.names.topic(REQUEST)
        self.partitions = PartitionCount(rt.producer, self.topic)
        self._last_requeue = 0.0  # the requeuing loop's last sweep of expired leases

    async def run(self, stopping: asyncio.Event) -> None:
        """Several claim-dispatch loops, so one batch's Postgres update overlaps another's
        wait for Kafka's acknowledgement (claims are atomic, so they never overlap)."""
        await asyncio.gather(*(self._loop(stopping, i == 0) for i in range(self.concurrency)))

    async def _loop(self, stopping: asyncio.Event, requeues: bool) -> None:
        retry = Retry(
            Backoff(first=0.1, cap=1.0),
            on=(Exception,),
            stopping=stopping,
            what="dispatch loop error; retrying",
            logger=log,
        )
        while not stopping.is_set():
            try:
                await retry.call(lambda: self._once(requeues))
            except Stopped:
                return

    async def _once(self, requeues: bool) -> None:
        """Dispatch one claimed batch, or wait (up to `max_sleep`) for the next due job."""
        queue = self.rt.queue
        now = time.time()
        if requeues and now - self._last_requeue >= 1.0:
            back = await queue.requeue_expired()
            if back:
                log.warning("expired leases returned to the queue", extra={"count": back})
            self._last_requeue = now
        claimed = await queue.claim(self.batch_size, self.rt.settings.lease_seconds)
        if claimed:
            await self.dispatch(claimed)
            return
        next_due = await queue.next_due()
        wait = self.max_sleep if next_due is None else next_due - time.time()
        await queue.wait_for_wake(min(max(wait, 0.0), self.max_sleep))

    async def dispatch(self, claimed: list[Claimed]) -> int:
        due = {c.job_id: c.due for c in claimed}
        settings = self.rt.settings
        partitions = await self.partitions.get()
        async with self.rt.db.transaction() as conn:
            cur = await conn.execute(
                _MARK_DISPATCHED,
                {
                    "ids": id_array(due),
                    "lease": settings.lease_seconds,
                    "stuck": settings.stuck_after_seconds,
                },
            )
            marked = await cur.fetchall()
            rows, records, unsendable = [], [], []
            for r in marked:
                try:
                    value = events.encode(REQUEST, request_value(r, due[str(r["id"])]))
                except Exception as exc:  # never let one job hold back its batch
                    unsendable.append((r, exc))
                    continue
                rows.append(r)
                partition = partition_for(r["placement"], partitions)
                records.append((self.topic, str(r["connection_id"]), value, partition))
            await outbox.add(
                conn,
                self.rt.names,
                [
                    outbox.status_event(r, JobStatus.IN_PROGRESS)
                    for r in rows
                    if r["old_status"] != JobStatus.IN_PROGRESS
                ],
            )
            if unsendable:
                await _dead_letter(conn, self.rt.names, unsendable)
        if unsendable:
            metrics.DEAD_LETTERED.labels(DeadLetterReason.PERMANENT_ERROR.value).inc(
                len(unsendable)
            )
        if records:
            await self.rt.producer.send_batch_async(records)
        await self.rt.queue.ack(list(due))
        sent = time.time()
        for r in rows:
            metrics.DISPATCH_LAG.observe(max(0.0, sent - due[str(r["id"])]))
        if rows:
            # One structured line per batch: the job ids with their attempts and traces.
            log.info(
                "jobs dispatched",
                extra={
                    "count": len(rows),
                    "jobs": [
                        {
                            "job_id": str(r["id"]),
                            "attempt": r["attempt_count"],
                            "trace_id": r["trace_id"],
                        }
                        for r in rows
                    ],
                },
            )
        metrics.JOBS_DISPATCHED.inc(len(rows))
        return len(rows)


async def _dead_letter(
    conn: psycopg.AsyncConnection[Row], names: Names, unsendable: list[tuple[Row, Exception]]
) -> None:
    """Jobs whose request cannot be encoded: DEAD_LETTERED as `permanent_error`, each with a
    dead letter naming the error (retrying cannot help; an operator looks)."""
    closed = []
    for row, exc in unsendable:
        fields = exc.fields if isinstance(exc, InvalidMessage) else {}
        last_error = {
            "outcome": DeadLetterReason.PERMANENT_ERROR.value,
            "attempt": row["attempt_count"],
            "code": None,
            "subcode": None,
            "message": f"the job cannot be sent to the publisher: {exc}",
            "fields": fields,
            "may_be_live": False,
        }
        cur = await conn.execute(
            "UPDATE jobs SET status = 'DEAD_LETTERED', next_attempt_at = NULL, queued = false,"
            " last_error = %s, updated_at = now() WHERE id = %s"
            f" RETURNING {JOB_COLUMNS}",
            (Jsonb(last_error), row["id"]),
        )
        job = await cur.fetchone()
        assert job is not None
        closed.append(outbox.status_event(job, JobStatus.DEAD_LETTERED, reason="unsendable"))
        await dead_letters.insert(
            conn,
            names,
            reason=DeadLetterReason.PERMANENT_ERROR.value,
            job_id=str(row["id"]),
            tenant_id=row["tenant_id"],
            platform=row["platform"],
            connection_id=str(row["connection_id"]),
            attempt=row["attempt_count"],
            last_error=last_error,
            trace_id=row["trace_id"],
        )
        log.error(
            "job cannot be sent; dead-lettered",
            extra={"job_id": str(row["id"]), "error": str(exc)[:300]},
        )
    await outbox.add(conn, names, closed)
