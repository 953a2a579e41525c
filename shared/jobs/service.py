"""The job service: the one way to schedule, cancel, reschedule and retry a job.

The HTTP API, the `publish.schedule` consumer and the CLI all go through it. Each change is
one Postgres transaction that also queues its `publish.status` event in the outbox; Redis is
written after the commit, and only as a cache of what Postgres says: when that write fails
(Redis away, a crash in between) the change still stands and is answered as done, and the
reconciler puts Redis right within seconds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import psycopg

from herald.shared.domain.jobs import JobStatus, allowed_sources
from herald.shared.domain.outcomes import REAUTHORISED
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import Conflict, NotFound, StoreUnavailable, ValidationFailed
from herald.shared.infra.batching import Coalescer
from herald.shared.infra.db.pool import Database, Row
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import Names
from herald.shared.infra.settings import Settings
from herald.shared.jobs import batch, scheduling
from herald.shared.jobs.batch import Outcome, ScheduleItem
from herald.shared.jobs.scheduling import Scheduled
from herald.shared.jobs.validation import (
    check_caption,
    check_instant,
    has_nul,
)
from herald.shared.jobs.views import attempt_view, cursor_params, job_view, page
from herald.shared.messages.codec import now_utc
from herald.shared.messages.status import status_event
from herald.shared.stores import attempts, dead_letters, jobs, outbox

log = logging.getLogger(__name__)
CANCELLED = JobLog(log, "jobs cancelled", "job cancelled")
RESCHEDULED = JobLog(log, "jobs rescheduled", "job rescheduled")
REQUEUED = JobLog(log, "jobs requeued by an operator", "job requeued by an operator")


def _uuid_or_404(job_id: str, what: str = "job") -> str:
    try:
        return str(uuid.UUID(job_id))
    except (ValueError, AttributeError) as exc:  # not echoed: it may be anything, any size
        raise NotFound(f"no {what} with that id (a {what} id is a UUID)") from exc


class JobService:
    def __init__(self, db: Database, queue: DelayedQueue, names: Names, settings: Settings) -> None:
        self.db = db
        self.queue = queue
        self.names = names
        self.settings = settings
        self._coalesced = Coalescer(self.schedule_many, max_batch=batch.MAX_BATCH)

    # ---- schedule -------------------------------------------------------------------------

    async def schedule(
        self, principal: Principal, body: Any, *, idempotency_key: str | None = None
    ) -> Scheduled:
        """Validate and persist one job per connection (`shared.jobs.batch`); raises the
        error that refuses it. Concurrent calls share one transaction (group commit: while
        one batch is written the next one gathers, and an idle service adds no wait); each
        is answered on its own, and the answer comes after the commit."""
        item = ScheduleItem(principal, body, idempotency_key=idempotency_key)
        outcome = await self._coalesced.submit(item)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.body is not None
        return Scheduled(outcome.created, outcome.body)

    async def schedule_many(self, items: list[ScheduleItem]) -> list[Outcome]:
        """Schedule each item on its own, in one transaction: one `Outcome` per item."""
        return await batch.schedule_each(self, items)

    async def preview(self, principal: Principal, body: Any) -> dict[str, Any]:
        """What `schedule` would answer, scheduling nothing (`shared.jobs.scheduling`)."""
        return await scheduling.preview(self, principal, body)

    async def mirror(
        self, add: Iterable[Mapping[str, Any]] = (), remove: list[str] | None = None
    ) -> None:
        """After a commit, make the delayed queue follow Postgres: `add` the job rows
        (`id`, `tenant_id`, `next_attempt_at`) at their due times, `remove` these ids (best
        effort: a failure is logged, and the reconciler restores queued jobs Redis does not
        hold)."""
        entries = jobs.queue_entries(add)
        try:
            if entries:
                await self.queue.add(entries)
            if remove:
                await self.queue.remove(remove)
        except StoreUnavailable as exc:
            log.warning(
                "redis write failed after commit; the reconciler restores it",
                extra={"job_ids": [*entries, *(remove or [])][:50], "error": str(exc)},
            )

    # ---- read -----------------------------------------------------------------------------

    async def get_row(self, principal: Principal, job_id: str) -> Row:
        job_id = _uuid_or_404(job_id)
        row = await jobs.get(self.db, job_id)
        if row is None or not principal.sees(row["tenant_id"]):
            raise NotFound(f"no job {job_id}")
        return row

    async def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        return job_view(await self.get_row(principal, job_id))

    async def attempts(self, principal: Principal, job_id: str) -> list[dict[str, Any]]:
        row = await self.get_row(principal, job_id)
        return [attempt_view(r) for r in await attempts.of_job(self.db, row["id"])]

    async def list_jobs(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        platform: str | None = None,
        connection_id: str | None = None,
        post_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        errors = {}
        if status is not None and status not in JobStatus.__members__:
            errors["status"] = f"must be one of {', '.join(JobStatus.__members__)}"
        for name, value in (("connection_id", connection_id), ("post_id", post_id)):
            if value is not None:
                try:
                    uuid.UUID(value)
                except ValueError:
                    errors[name] = "must be a UUID"
        if errors:
            raise ValidationFailed("bad filter", fields=errors)
        rows = await jobs.page(
            self.db,
            {
                "tenant": None if principal.is_admin else principal.tenant_id,
                "status": status,
                "platform": platform,
                "conn": connection_id,
                "post": post_id,
            }
            | cursor_params(cursor, limit),
        )
        return page(rows, limit, job_view)

    # ---- change ---------------------------------------------------------------------------

    async def cancel(self, principal: Principal, job_id: str) -> dict[str, Any]:
        row = await self.get_row(principal, job_id)
        async with self.db.transaction() as conn:
            updated = await jobs.cancel(conn, row["id"], allowed_sources(JobStatus.CANCELLED))
            if updated is None:
                current = await _current(conn, row["id"])
                if current["status"] == JobStatus.CANCELLED:
                    return job_view(current)  # cancelling twice is a no-op
                if current["call_started_at"] is not None:
                    raise Conflict("the platform call has started", code="call_started")
                raise Conflict(f"a {current['status']} job cannot be cancelled", code="terminal")
            await outbox.add(conn, self.names, [status_event(updated, JobStatus.CANCELLED)])
        await self.mirror(remove=[str(updated["id"])])
        CANCELLED.add([{"job_id": str(updated["id"]), "trace_id": updated["trace_id"]}])
        return job_view(updated)

    async def reschedule(self, principal: Principal, job_id: str, body: Any) -> dict[str, Any]:
        row = await self.get_row(principal, job_id)
        if not isinstance(body, dict):
            raise ValidationFailed("the body must be a JSON object", fields={"$": "not an object"})
        errors: dict[str, str] = {
            k: "must not contain NUL characters" for k, v in body.items() if has_nul(v)
        }
        for key in set(body) - {"scheduled_at", "caption", "publish_deadline"}:
            errors[key] = "cannot be changed; only scheduled_at, caption and publish_deadline can"
        now = now_utc()
        scheduled = check_instant(body.get("scheduled_at"), "scheduled_at", errors, now=now)
        deadline = check_instant(body.get("publish_deadline"), "publish_deadline", errors, now=now)
        caption = check_caption(row["platform"], body.get("caption", row["caption"]), errors)
        if errors:
            raise ValidationFailed("the change is invalid", fields=errors)
        scheduled_at = row["scheduled_at"]
        if "scheduled_at" in body:
            scheduled_at = scheduled if scheduled is not None and scheduled > now else now
        explicit = row["deadline_explicit"] or deadline is not None
        if deadline is None:
            deadline = (
                row["publish_deadline"]
                if row["deadline_explicit"]
                else (scheduled_at + timedelta(seconds=self.settings.missed_after_seconds))
            )
        if deadline <= scheduled_at:
            raise ValidationFailed(
                "publish_deadline must be after scheduled_at",
                fields={"publish_deadline": "must be after scheduled_at"},
            )
        queued = scheduled_at <= now + timedelta(seconds=self.settings.redis_horizon_seconds)
        async with self.db.transaction() as conn:
            change = {
                "scheduled_at": scheduled_at,
                "caption": caption,
                "publish_deadline": deadline,
                "deadline_explicit": explicit,
                "queued": queued,
            }
            updated = await jobs.reschedule(conn, row["id"], change)
            if updated is None:
                current = await _current(conn, row["id"])
                raise Conflict(
                    f"only a SCHEDULED job can be changed; this one is {current['status']}",
                    code="not_editable",
                )
            await outbox.add(
                conn,
                self.names,
                [status_event(updated, JobStatus.SCHEDULED, reason="rescheduled")],
            )
        if queued:
            await self.mirror(add=[updated])
        else:
            await self.mirror(remove=[str(updated["id"])])
        RESCHEDULED.add(
            [
                {
                    "job_id": str(updated["id"]),
                    "trace_id": updated["trace_id"],
                    "scheduled_at": str(scheduled_at),
                }
            ]
        )
        return job_view(updated)

    async def retry(
        self, principal: Principal, job_id: str, *, force: bool = False
    ) -> dict[str, Any]:
        row = await self.get_row(principal, job_id)
        rows = await self.requeue_now([row["id"]], force=force, strict=True)
        return job_view(rows[0])

    async def requeue_now(
        self, job_ids: list[Any], *, force: bool, strict: bool = False
    ) -> list[Row]:
        """Operator retry / redrive: RETRY_SCHEDULED now with a fresh budget.

        `strict` raises 409 for a job that cannot be retried (the single-job route); a
        redrive skips those. Jobs whose outcome is unconfirmed need `force`.
        """
        now = now_utc()
        deadline = now + timedelta(seconds=self.settings.missed_after_seconds)
        async with self.db.transaction() as conn:
            rows = await jobs.requeue_now(conn, job_ids, now=now, deadline=deadline, force=force)
            if strict and not rows:
                current = await _current(conn, job_ids[0])
                if current["force_required"] and current["status"] == JobStatus.DEAD_LETTERED:
                    raise Conflict(
                        "the post may be live (unconfirmed); retry with force to check again",
                        code="force_required",
                    )
                raise Conflict(f"a {current['status']} job cannot be retried", code="not_retryable")
            await dead_letters.mark_redriven(conn, [r["id"] for r in rows])
            await outbox.add(
                conn,
                self.names,
                [status_event(r, JobStatus.RETRY_SCHEDULED, reason="manual_retry") for r in rows],
            )
        await self.mirror(add=rows)
        REQUEUED.add(rows, lambda r: {"job_id": str(r["id"]), "trace_id": r["trace_id"]})
        return rows

    async def release_held(self, connection_id: str) -> int:
        """A new token for the connection: its jobs held for one are due now (each with a
        status event), and how many there were."""
        async with self.db.transaction() as conn:
            rows = await jobs.release_held(conn, connection_id)
            await outbox.add(
                conn,
                self.names,
                [status_event(r, JobStatus.RETRY_SCHEDULED, reason=REAUTHORISED) for r in rows],
            )
        await self.mirror(add=rows)
        if rows:
            log.info(
                "jobs released by a new token",
                extra={"connection_id": connection_id, "count": len(rows)},
            )
        return len(rows)


async def _current(conn: psycopg.AsyncConnection[Row], job_id: Any) -> Row:
    """The job as a refused change found it (the change's transaction sees it)."""
    row = await jobs.get(conn, job_id)
    assert row is not None
    return row
