"""Scheduling many commands at once (the `publish.schedule` consumer's path).

Same validation and rules as `JobService.schedule`, but one connection lookup, one
transaction (`executemany`) and one Redis pipeline per batch instead of per job.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import Conflict, DomainError
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row
from herald.shared.jobs.service import (
    JobService,
    check_connections,
    job_row,
    request_hash,
)
from herald.shared.jobs.validation import JobInput, validate_job
from herald.shared.messages.codec import new_trace_id, now_utc
from herald.shared.messages.status import status_event
from herald.shared.stores import connections, jobs, outbox
from herald.shared.stores.tenants import ensure_tenants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleItem:
    principal: Principal
    body: dict[str, Any]
    job_id: str
    post_id: str | None = None
    trace_id: str | None = None


@dataclass
class _Planned:
    item: ScheduleItem
    spec: JobInput
    connection: Row
    digest: str


async def schedule_batch(svc: JobService, items: list[ScheduleItem]) -> list[DomainError | None]:
    """Schedule each item; returns, per item, None (scheduled or an identical replay) or the
    error that refused it. Nothing refused is written."""
    now = now_utc()
    results: list[DomainError | None] = [None] * len(items)
    specs: dict[int, JobInput] = {}
    for i, item in enumerate(items):
        try:
            specs[i] = validate_job(
                item.body, now=now, missed_after_seconds=svc.settings.missed_after_seconds
            )
        except DomainError as exc:
            results[i] = exc
    wanted = {c for spec in specs.values() for c in spec.connection_ids}
    rows = await connections.by_ids(svc.db, sorted(wanted))
    by_id = {str(r["id"]): r for r in rows}
    planned: dict[int, _Planned] = {}
    for i, spec in specs.items():
        try:
            (connection,) = check_connections(items[i].principal, spec, by_id)
            planned[i] = _Planned(items[i], spec, connection, request_hash(items[i].body))
        except DomainError as exc:
            results[i] = exc

    horizon = now + timedelta(seconds=svc.settings.redis_horizon_seconds)
    inserted: list[_Planned] = []
    async with svc.db.transaction() as conn:
        await ensure_tenants(conn, [p.connection["tenant_id"] for p in planned.values()])
        known = await jobs.request_hashes(conn, [p.item.job_id for p in planned.values()])
        for i, plan in planned.items():
            job_id = str(uuid.UUID(plan.item.job_id))
            if job_id in known:
                if known[job_id] != plan.digest:
                    results[i] = Conflict(
                        "job_id is already used by another job",
                        code="job_id_reused",
                        fields={"job_id": "is already used with another body"},
                    )
                continue  # the same command again: a no-op
            known[job_id] = plan.digest
            inserted.append(plan)
        new_jobs = []
        events = []
        for plan in inserted:
            spec = plan.spec
            values = {
                "id": str(uuid.UUID(plan.item.job_id)),
                "tenant_id": plan.connection["tenant_id"],
                "post_id": plan.item.post_id or str(uuid.uuid4()),
                "trace_id": plan.item.trace_id or new_trace_id(),
                "attempt_count": 0,
                "next_attempt_at": spec.scheduled_at,
            }
            new_jobs.append(
                job_row(
                    spec,
                    job_id=values["id"],
                    tenant_id=values["tenant_id"],
                    post_id=values["post_id"],
                    connection_id=plan.connection["id"],
                    queued=spec.scheduled_at <= horizon,
                    digest=plan.digest,
                    trace_id=values["trace_id"],
                )
            )
            events.append(status_event(values, JobStatus.SCHEDULED, time=now))
        if new_jobs:
            await jobs.insert_many(conn, new_jobs)
            await outbox.add(conn, svc.names, events)
    await svc.mirror(
        add={
            str(uuid.UUID(p.item.job_id)): p.spec.scheduled_at
            for p in inserted
            if p.spec.scheduled_at <= horizon
        }
    )
    metrics.JOBS_SCHEDULED.inc(len(inserted))
    if inserted:
        log.info("jobs scheduled", extra={"count": len(inserted)})
    return results
