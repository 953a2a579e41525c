"""Scheduling many jobs in one transaction: the one write path of a new job. The HTTP API's
batch route, its single route (concurrent requests share a batch: `JobService.schedule`)
and the `publish.schedule` consumer all come here.

Each item is validated and checked on its own and answered on its own: one item's error
never fails another. What the batch writes (the jobs, their idempotency keys, one outbox
row of status events) is one multi-row statement per table in one transaction, and Redis
follows after the commit in one pipeline (`JobService.mirror`, best effort).
The Postgres statements are pipelined too: without idempotency keys or job ids to look
up, a batch is one round trip to Postgres and its commit.

An item is idempotent by its client-made `job_id` (a command: the same body again is a
no-op) or by its `idempotency_key` (the API: the same body again answers the stored jobs,
another body is a 409). Keys are locked in one statement, in one order, so concurrent
batches and single requests holding the same key wait for each other and never deadlock.
Two items of one batch with the same key behave as two requests in a row: the second
answers the first's jobs (200), or 409 when its body differs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import Conflict, DomainError, StoreUnavailable, ValidationFailed
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row
from herald.shared.infra.logging import JobLog
from herald.shared.jobs.scheduling import check_connections, request_hash
from herald.shared.jobs.validation import JobInput, validate_job
from herald.shared.jobs.views import job_view
from herald.shared.messages.codec import new_trace_id, now_utc, uuid_text
from herald.shared.messages.status import status_event
from herald.shared.stores import connections, idempotency_keys, jobs, outbox

if TYPE_CHECKING:
    from herald.shared.jobs.service import JobService

log = logging.getLogger(__name__)
SCHEDULED = JobLog(log, "jobs scheduled", "job scheduled")
MAX_BATCH = 1000  # items in one transaction: the batch route's limit, the group commit's
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class ScheduleItem:
    principal: Principal
    body: Any  # a job body, as `POST /publishing/jobs` takes it (validated here)
    job_id: str | None = None  # a command's client-made id; None: new ids, one per connection
    post_id: str | None = None
    trace_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One item's answer: `error`, or its jobs' rows (none for a command's repeat, found by
    its job id). `multi`: the item named `connection_ids`, and is answered as a post."""

    error: DomainError | None = None
    created: bool = False
    rows: list[Row] = field(default_factory=list)
    multi: bool = False

    @property
    def body(self) -> dict[str, Any] | None:
        """The item's answer, as `POST /publishing/jobs` gives it; built when asked (a
        command's outcome is never shown)."""
        if not self.rows:
            return None
        if self.multi:
            views = [job_view(r) for r in self.rows]
            return {"post_id": str(self.rows[0]["post_id"]), "jobs": views}
        return job_view(self.rows[0])

    @property
    def status(self) -> int:
        if self.error is not None:
            return self.error.status
        return 201 if self.created else 200

    def item(self) -> dict[str, Any]:
        """The outcome as an item of the batch route's answer."""
        if self.error is not None:
            return {"status": self.status, **self.error.to_body()}
        return {"status": self.status, "job": self.body}


def checked_key(key: Any, field: str) -> str | None:
    """An idempotency key (the header, or a batch item's field): 1 to 255 printable
    characters around any spaces; None when absent."""
    if key is None:
        return None
    key = key.strip() if isinstance(key, str) else ""
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationFailed(
            f"bad {field}",
            fields={field: f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"},
        )
    return str(key)


async def schedule_bodies(
    svc: JobService, principal: Principal, bodies: list[Any]
) -> list[Outcome]:
    """Job bodies as the batch route takes them (each may carry its `idempotency_key`),
    scheduled each on its own: one `Outcome` per body, in order."""
    answers: list[Outcome | None] = [None] * len(bodies)
    items: list[tuple[int, ScheduleItem]] = []
    for i, body in enumerate(bodies):
        key = None
        if isinstance(body, dict) and "idempotency_key" in body:
            try:
                key = checked_key(body["idempotency_key"], "idempotency_key")
            except ValidationFailed as exc:
                answers[i] = Outcome(exc)
                continue
            body = {k: v for k, v in body.items() if k != "idempotency_key"}
        items.append((i, ScheduleItem(principal, body, idempotency_key=key)))
    for start in range(0, len(items), MAX_BATCH):
        chunk = items[start : start + MAX_BATCH]
        outcomes = await schedule_each(svc, [item for _, item in chunk])
        for (i, _), outcome in zip(chunk, outcomes, strict=True):
            answers[i] = outcome
    return [a or Outcome() for a in answers]


class Unexpected(DomainError):
    """An item that raised what no check foresaw (a bug): answered 500, alone."""

    status = 500
    code = "internal_error"


async def schedule_each(svc: JobService, items: list[ScheduleItem]) -> list[Outcome]:
    """`schedule_batch`; should it raise anything but an outage, each item again alone, so
    only the item that raised is answered 500 and the others are scheduled."""
    try:
        return await schedule_batch(svc, items)
    except StoreUnavailable:
        raise
    except Exception:
        if len(items) > 1:
            log.warning("a schedule batch failed; scheduling it item by item")
            return [o for item in items for o in await schedule_each(svc, [item])]
        log.exception("scheduling a job failed")
        return [Outcome(Unexpected("an unexpected error occurred"))]


@dataclass
class _Planned:
    index: int
    item: ScheduleItem
    spec: JobInput
    connections: list[Row]
    digest: str
    tenant_id: str = ""
    rows: list[Row] = field(default_factory=list)


def _reused_key() -> Conflict:
    return Conflict(
        "this Idempotency-Key was used with another body", code="idempotency_key_reused"
    )


def _reused_job_id() -> Conflict:
    return Conflict(
        "job_id is already used by another job",
        code="job_id_reused",
        fields={"job_id": "is already used with another body"},
    )


def _plan(
    svc: JobService, items: list[ScheduleItem], now: datetime
) -> tuple[list[Outcome | None], dict[int, JobInput]]:
    answers: list[Outcome | None] = [None] * len(items)
    specs: dict[int, JobInput] = {}
    missed_after = svc.settings.missed_after_seconds
    for i, item in enumerate(items):
        try:
            specs[i] = validate_job(item.body, now=now, missed_after_seconds=missed_after)
            if item.job_id is not None and len(specs[i].connection_ids) != 1:
                raise ValidationFailed(
                    "a job_id names one job", fields={"job_id": "takes one connection_id"}
                )
        except DomainError as exc:
            answers[i] = Outcome(exc)
            specs.pop(i, None)
    return answers, specs


@dataclass(frozen=True)
class Checked:
    """Items validated (`check`), to be written (`write`): each refused item's answer, each
    valid one's job, and the instant both were judged at."""

    items: list[ScheduleItem]
    now: datetime
    answers: list[Outcome | None]
    specs: dict[int, JobInput]


def check(svc: JobService, items: list[ScheduleItem]) -> Checked:
    """The first half of `schedule_batch`: every item validated, with no store read. A caller
    may check the next items while the write before them waits (the Kafka ingress)."""
    now = now_utc()
    answers, specs = _plan(svc, items, now)
    return Checked(items, now, answers, specs)


async def schedule_batch(svc: JobService, items: list[ScheduleItem]) -> list[Outcome]:
    """Schedule each item; one `Outcome` per item, in order. Nothing refused is written."""
    return await write(svc, check(svc, items))


async def write(svc: JobService, checked: Checked) -> list[Outcome]:
    """The second half of `schedule_batch`: the checked items' connections, idempotency and
    jobs, in one transaction, and Redis after it.

    Job ids are read, not locked (keys are): a command whose job another transaction was
    writing at once (the same command delivered twice, in two transactions) reads as new
    here, and its insert meets the other's row as a duplicate key once that commits. The
    batch is then written again: it reads that row, and the command is the no-op (or the
    `job_id_reused`) it is when it comes after."""
    for _ in range(_WRITES - 1):
        try:
            return await _write(svc, checked)
        except psycopg.errors.UniqueViolation:
            log.warning("a schedule batch met a concurrent write of its jobs; written again")
    return await _write(svc, checked)


_WRITES = 3  # each new try follows another writer's commit


async def _write(svc: JobService, checked: Checked) -> list[Outcome]:
    items, now, specs = checked.items, checked.now, checked.specs
    answers = list(checked.answers)
    wanted = {c for spec in specs.values() for c in spec.connection_ids}
    by_id = {str(r["id"]): r for r in await connections.by_ids(svc.db, sorted(wanted))}
    planned: list[_Planned] = []
    for i, spec in specs.items():
        item = items[i]
        try:
            found = check_connections(item.principal, spec, by_id)
        except DomainError as exc:
            answers[i] = Outcome(exc)
            continue
        plan = _Planned(i, item, spec, found, request_hash(item.body))
        plan.tenant_id = str(found[0]["tenant_id"])
        planned.append(plan)
    if not planned:
        return [a or Outcome() for a in answers]

    horizon = now + timedelta(seconds=svc.settings.redis_horizon_seconds)
    new_rows: list[Row] = []
    new_keys: list[dict[str, Any]] = []
    # Pipelined: the statements go out without waiting for each other's answers (a read
    # waits for its own), so a batch that reads nothing is one round trip with its COMMIT;
    # the pipeline's end waits for every answer, the COMMIT's included. (The tenants exist:
    # a job's tenant is its connection's, and connections reference tenants.)
    async with svc.db.connection() as conn, conn.pipeline(), conn.transaction():
        keyed = [(p.tenant_id, p.item.idempotency_key) for p in planned if p.item.idempotency_key]
        stored: dict[tuple[str, str], Row] = {}
        stored_rows: dict[str, Row] = {}
        if keyed:
            stored = await idempotency_keys.find_locked_many(conn, keyed)
            ids = [str(j) for k in stored.values() for j in k["job_ids"]]
            stored_rows = {str(r["id"]): r for r in await jobs.existing(conn, ids)} if ids else {}
        given = [p.item.job_id for p in planned if p.item.job_id is not None]
        known = await jobs.request_hashes(conn, given) if given else {}
        fresh: dict[tuple[str, str], _Planned] = {}  # keys first used in this batch
        for plan in planned:
            key = plan.item.idempotency_key
            slot = (plan.tenant_id, key) if key else None
            if slot is not None and slot in stored:
                found_key = stored[slot]
                answers[plan.index] = (
                    Outcome(_reused_key())
                    if found_key["request_hash"] != plan.digest
                    else Outcome(
                        rows=[stored_rows[str(j)] for j in found_key["job_ids"]],
                        multi=found_key["multi"],
                    )
                )
                continue
            if slot is not None and slot in fresh:
                first = fresh[slot]
                answers[plan.index] = (
                    Outcome(_reused_key())
                    if first.digest != plan.digest
                    else Outcome(rows=first.rows, multi=first.spec.multi)
                )
                continue
            if plan.item.job_id is not None:
                job_id = uuid_text(plan.item.job_id)
                if job_id in known:  # the same command again: a no-op; another body: refused
                    answers[plan.index] = Outcome(
                        None if known[job_id] == plan.digest else _reused_job_id()
                    )
                    continue
                known[job_id] = plan.digest
            plan.rows = _new_rows(plan, now, horizon)
            new_rows.extend(plan.rows)
            answers[plan.index] = Outcome(created=True, rows=plan.rows, multi=plan.spec.multi)
            if slot is not None:
                fresh[slot] = plan
                new_keys.append(
                    {
                        "tenant_id": plan.tenant_id,
                        "key": key,
                        "request_hash": plan.digest,
                        "post_id": plan.rows[0]["post_id"],
                        "job_ids": [r["id"] for r in plan.rows],
                        "multi": plan.spec.multi,
                    }
                )
        if new_rows:
            await jobs.insert_many(conn, new_rows, now=now)
            await idempotency_keys.insert_many(conn, new_keys)
            events = [status_event(r, JobStatus.SCHEDULED, time=now) for r in new_rows]
            await outbox.add(conn, svc.names, events)
    try:
        await svc.mirror(add=[r for r in new_rows if r["queued"]])
    except Exception:  # committed: never answer (or, in `schedule_each`, write) it again
        log.exception("redis write failed after commit; the reconciler restores it")
    metrics.JOBS_SCHEDULED.inc(len(new_rows))
    SCHEDULED.add(
        new_rows,
        lambda r: {
            "job_id": r["id"],
            "trace_id": r["trace_id"],
            "scheduled_at": str(r["scheduled_at"]),
        },
    )
    return [a or Outcome() for a in answers]


def new_id() -> str:
    """A random (version 4) UUID's text: `uuid.uuid4()` builds an object only to print it,
    and three of them per job were a sixth of the batch's CPU time."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"


def _new_rows(plan: _Planned, now: datetime, horizon: datetime) -> list[Row]:
    """The item's new jobs, one per connection: the columns `stores.jobs.insert_many`
    writes and those a new job starts with (what `job_view` shows)."""
    spec, item = plan.spec, plan.item
    ids = [item.job_id] if item.job_id is not None else [None] * len(plan.connections)
    post_id = item.post_id or new_id()
    trace_id = item.trace_id or new_trace_id()
    digest = plan.digest
    queued = spec.scheduled_at <= horizon
    rows: list[Row] = []
    for job_id, connection in zip(ids, plan.connections, strict=True):
        platform = str(connection["platform"])
        rows.append(
            {
                "id": uuid_text(job_id) if job_id is not None else new_id(),
                "tenant_id": plan.tenant_id,
                "post_id": post_id,
                "platform": platform,
                "connection_id": str(connection["id"]),
                "media_asset_ids": spec.media_asset_ids,
                "caption": spec.caption_for(platform),
                "media_type": spec.media_type,
                "scheduled_at": spec.scheduled_at,
                "publish_deadline": spec.publish_deadline,
                "deadline_explicit": spec.deadline_explicit,
                "queued": queued,
                "request_hash": digest,
                "trace_id": trace_id,
                "status": JobStatus.SCHEDULED.value,
                "attempt_count": 0,
                "next_attempt_at": spec.scheduled_at,
                "published_at": None,
                "provider_ids": {},
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows
