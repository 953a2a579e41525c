"""Scheduling: the one way a job comes to be, one request at a time (the HTTP API, the CLI:
`schedule`) or many commands at once (the `publish.schedule` consumer: `schedule_batch`).

Both validate with the same rules (`validation`), check the same connections
(`check_connections`), write the same rows (`job_row`) and status events in one
transaction, and make the same job id or idempotency key idempotent; Redis follows after
the commit (`JobService.mirror`). One request refuses as a whole (422 naming the field);
a batch refuses command by command and writes the rest.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import psycopg

from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import Conflict, DomainError, ValidationFailed
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row
from herald.shared.jobs.validation import (
    JobInput,
    caption_counts,
    check_for_platform,
    validate_job,
)
from herald.shared.jobs.views import job_view
from herald.shared.messages.codec import iso, new_trace_id, now_utc
from herald.shared.messages.status import status_event
from herald.shared.stores import connections, idempotency_keys, jobs, outbox
from herald.shared.stores.tenants import ensure_tenant, ensure_tenants

if TYPE_CHECKING:
    from herald.shared.jobs.service import JobService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scheduled:
    """What `schedule` answers: 201 for new jobs, 200 for an idempotent replay."""

    created: bool
    body: dict[str, Any]


def job_row(
    spec: JobInput,
    *,
    job_id: str,
    tenant_id: str,
    post_id: str,
    connection: Row,
    queued: bool,
    digest: str,
    trace_id: str,
) -> dict[str, Any]:
    """A new job's columns, as `stores.jobs.insert` takes them: the connection's platform,
    and the caption meant for it."""
    platform = str(connection["platform"])
    return {
        "id": job_id,
        "tenant_id": tenant_id,
        "post_id": post_id,
        "platform": platform,
        "connection_id": connection["id"],
        "media_asset_ids": spec.media_asset_ids,
        "caption": spec.caption_for(platform),
        "media_type": spec.media_type,
        "scheduled_at": spec.scheduled_at,
        "publish_deadline": spec.publish_deadline,
        "deadline_explicit": spec.deadline_explicit,
        "queued": queued,
        "request_hash": digest,
        "trace_id": trace_id,
    }


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def schedule(
    svc: JobService,
    principal: Principal,
    body: Any,
    *,
    idempotency_key: str | None = None,
    job_ids: list[str] | None = None,
    post_id: str | None = None,
    trace_id: str | None = None,
) -> Scheduled:
    """Validate and persist one job per connection; `job_ids` are client-made (commands)."""
    now = now_utc()
    spec = validate_job(body, now=now, missed_after_seconds=svc.settings.missed_after_seconds)
    digest = request_hash(body)
    connections = await _connections_for(svc, principal, spec)
    tenant_id = connections[0]["tenant_id"]
    ids = job_ids or [str(uuid.uuid4()) for _ in spec.connection_ids]
    post = post_id or str(uuid.uuid4())
    trace = trace_id or new_trace_id()
    horizon = now + timedelta(seconds=svc.settings.redis_horizon_seconds)
    queued = spec.scheduled_at <= horizon
    async with svc.db.transaction() as conn:
        if idempotency_key is not None:
            replay = await _idempotent_replay(conn, tenant_id, idempotency_key, digest)
            if replay is not None:
                return replay
        existing = await jobs.existing(conn, ids)
        if existing:
            # A retried command carrying the same job_id: the same body is a no-op.
            if all(r["request_hash"] == digest for r in existing) and len(existing) == len(ids):
                return Scheduled(False, _body(spec, existing))
            raise Conflict(
                "job_id is already used by another job",
                code="job_id_reused",
                fields={"job_id": "is already used with another body"},
            )
        rows = []
        for job_id, connection in zip(ids, connections, strict=True):
            new = job_row(
                spec,
                job_id=job_id,
                tenant_id=tenant_id,
                post_id=post,
                connection=connection,
                queued=queued,
                digest=digest,
                trace_id=trace,
            )
            rows.append(await jobs.insert(conn, new))
        if idempotency_key is not None:
            await idempotency_keys.insert(
                conn,
                tenant_id=tenant_id,
                key=idempotency_key,
                digest=digest,
                post_id=post,
                job_ids=ids,
                multi=spec.multi,
            )
        await outbox.add(conn, svc.names, [status_event(r, JobStatus.SCHEDULED) for r in rows])
    metrics.JOBS_SCHEDULED.inc(len(rows))
    if queued:
        await svc.mirror(add=rows)
    for r in rows:
        log.info(
            "job scheduled",
            extra={
                "job_id": str(r["id"]),
                "trace_id": trace,
                "scheduled_at": str(r["scheduled_at"]),
            },
        )
    return Scheduled(True, _body(spec, rows))


async def preview(svc: JobService, principal: Principal, body: Any) -> dict[str, Any]:
    """What `schedule` would answer for `body`, without writing anything: the same checks
    (`validate_job`, then `check_connections`), the error it would answer, the times it
    would store, and the caption's counts against the platform's limits. An Idempotency-Key
    replay is not looked up: a valid body here is one `schedule` would take as new."""
    counts = caption_counts(
        *(
            (body.get("platform"), body.get("caption") or "")
            if isinstance(body, dict)
            else (None, None)
        )
    )
    try:
        spec = validate_job(
            body, now=now_utc(), missed_after_seconds=svc.settings.missed_after_seconds
        )
        rows = await connections.by_ids(svc.db, spec.connection_ids)
        check_connections(principal, spec, {str(r["id"]): r for r in rows})
    except DomainError as exc:
        return {"valid": False, "status": exc.status, **exc.to_body(), "caption": counts}
    return {
        "valid": True,
        "status": 201,
        "error": None,
        "caption": counts,
        "platform": spec.platform,
        "connection_ids": spec.connection_ids,
        "scheduled_at": iso(spec.scheduled_at),
        "publish_deadline": iso(spec.publish_deadline),
    }


def _body(spec: JobInput, rows: list[Row]) -> dict[str, Any]:
    if spec.multi:
        return {"post_id": str(rows[0]["post_id"]), "jobs": [job_view(r) for r in rows]}
    return job_view(rows[0])


async def _idempotent_replay(
    conn: psycopg.AsyncConnection[Row], tenant_id: str, key: str, digest: str
) -> Scheduled | None:
    found = await idempotency_keys.find_locked(conn, tenant_id, key)
    if found is None:
        return None
    if found["request_hash"] != digest:
        raise Conflict(
            "this Idempotency-Key was used with another body", code="idempotency_key_reused"
        )
    rows = await jobs.existing(conn, [str(j) for j in found["job_ids"]])
    rows.sort(key=lambda r: [str(j) for j in found["job_ids"]].index(str(r["id"])))
    if found["multi"]:
        return Scheduled(
            False, {"post_id": str(found["post_id"]), "jobs": [job_view(r) for r in rows]}
        )
    return Scheduled(False, job_view(rows[0]))


async def _connections_for(svc: JobService, principal: Principal, spec: JobInput) -> list[Row]:
    rows = await connections.by_ids(svc.db, spec.connection_ids)
    ordered = check_connections(principal, spec, {str(r["id"]): r for r in rows})
    await ensure_tenant(svc.db, ordered[0]["tenant_id"])
    return ordered


def check_connections(principal: Principal, spec: JobInput, by_id: dict[str, Row]) -> list[Row]:
    """The job's connections, in order: each known to the principal, enabled, of the job's
    platform (when it names one; else each network's media and caption limits hold), all of
    one tenant (and of the admin's `tenant_id`, when given)."""
    ordered = []
    limits: dict[str, str] = {}
    for i, cid in enumerate(spec.connection_ids):
        field = f"connection_ids[{i}]" if spec.multi else "connection_id"
        try:
            row = by_id.get(str(uuid.UUID(cid)))
        except ValueError:
            row = None
        if row is None or not principal.sees(row["tenant_id"]):
            raise ValidationFailed("unknown connection", fields={field: f"no connection {cid}"})
        if row["status"] == "disabled":
            raise ValidationFailed(
                "disabled connection", fields={field: f"connection {cid} is disabled"}
            )
        if spec.platform is not None and row["platform"] != spec.platform:
            raise ValidationFailed(
                "platform mismatch",
                fields={field: f"connection {cid} is a {row['platform']} connection"},
            )
        if spec.platform is None:
            name = str(row["platform"])
            found = check_for_platform(
                name, spec.media_asset_ids, spec.media_type, spec.caption_for(name)
            )
            if found:
                limits[field] = f"{name} connection {cid}: " + "; ".join(
                    f"{k} {v}" for k, v in sorted(found.items())
                )
        ordered.append(row)
    if limits:
        raise ValidationFailed("a network refuses the post", fields=limits)
    field = "connection_ids" if spec.multi else "connection_id"
    tenants = {r["tenant_id"] for r in ordered}
    if len(tenants) > 1:
        raise ValidationFailed(
            "connections of several tenants", fields={field: "must belong to one tenant"}
        )
    if spec.tenant_id is not None:
        if not principal.is_admin:
            raise ValidationFailed(
                "only an admin key may name a tenant", fields={"tenant_id": "not allowed"}
            )
        if spec.tenant_id not in tenants:
            raise ValidationFailed(
                "tenant mismatch", fields={"tenant_id": "does not own the connection"}
            )
    return ordered


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
        queued = []  # the new jobs due within the Redis horizon
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
                    connection=plan.connection,
                    queued=spec.scheduled_at <= horizon,
                    digest=plan.digest,
                    trace_id=values["trace_id"],
                )
            )
            events.append(status_event(values, JobStatus.SCHEDULED, time=now))
            if spec.scheduled_at <= horizon:
                queued.append(values)
        if new_jobs:
            await jobs.insert_many(conn, new_jobs)
            await outbox.add(conn, svc.names, events)
    await svc.mirror(add=queued)
    metrics.JOBS_SCHEDULED.inc(len(inserted))
    if inserted:
        log.info("jobs scheduled", extra={"count": len(inserted)})
    return results
