"""The results consumer: `publish.result` batches → attempts, job transitions, dead letters.

One Postgres transaction per batch: lock the batch's jobs (in id order, so concurrent
copies never deadlock each other), insert the attempt rows (`ON CONFLICT DO NOTHING`: a
redelivered result is recognised by its existing row and changes nothing), run the retry
policy on each new result in order, write the jobs, the dead letters and every status
change's `publish.status` event (outbox). After the commit, Redis mirrors the new state
(retries added, dropped retries removed). The BatchConsumer commits the offsets only after
all of that returned, so a crash anywhere redelivers the batch and the redelivery repeats
only the idempotent Redis writes.

A result that cannot be read (it fails its schema, names another tenant, platform or
connection than its job, or holds a value Postgres refuses) is kept as a dead letter with
its raw bytes. When it names a job that is waiting for that attempt's answer, the job does
not wait forever: it is dead-lettered as `unreadable_result` (the post may be live, so only a
forced retry or redrive brings it back).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from herald.services.results import records
from herald.services.results.hold import ResultHold
from herald.services.results.policy import (
    Action,
    Decision,
    JobState,
    PolicyConfig,
    Rand,
    decide,
    unreadable_result,
)
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import NEEDS_REAUTH, DeadLetterReason
from herald.shared.errors import InvalidMessage, StoreUnavailable
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import Message
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import RESULT, RESULTS_GROUP
from herald.shared.infra.runtime import Runtime
from herald.shared.messages import codec
from herald.shared.messages.request import job_fields
from herald.shared.messages.result import Result, decode_result
from herald.shared.messages.status import status_event
from herald.shared.stores import dead_letters, jobs, outbox

log = logging.getLogger(__name__)
APPLIED = JobLog(log, "results applied", "result applied", by="status")


@dataclass
class Invalid:
    raw: bytes | None
    error: InvalidMessage
    job_id: str | None = None
    attempt: int | None = None
    stranded: bool = False  # its job was dead-lettered as `unreadable_result` (one letter)


@dataclass(frozen=True)
class Dead:
    """A job the batch dead-letters, and what its dead letter carries."""

    reason: DeadLetterReason
    row: Row
    attempt: int
    trace_id: str
    last_result: dict[str, Any] | None = None
    raw: bytes | None = None


@dataclass
class Plan:
    """What one batch changes, built in memory under the row locks."""

    decisions: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    locked: dict[str, Row] = field(default_factory=dict)  # job id → row, as the batch leaves it
    original: dict[str, str] = field(default_factory=dict)  # moved job id → status before
    touched: set[str] = field(default_factory=set)  # jobs whose Redis entry must mirror Postgres
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    dead: list[Dead] = field(default_factory=list)
    published: list[Row] = field(default_factory=list)
    logged: list[dict[str, Any]] = field(default_factory=list)  # one entry per fresh result


@dataclass(frozen=True)
class BatchReport:
    received: int
    invalid: int
    duplicates: int
    decisions: dict[str, int]


class ResultsConsumer:
    def __init__(
        self,
        rt: Runtime,
        *,
        batch_size: int = 500,
        rand: Rand = random.random,
        hold: ResultHold | None = None,
    ) -> None:
        self.rt = rt
        self.hold = hold  # None: apply every batch at once
        self.names = rt.names
        self.topic = rt.names.topic(RESULT)
        self.batch_size = batch_size
        self.config = PolicyConfig.from_settings(rt.settings)
        self.rand = rand

    def consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.rt.settings.kafka_bootstrap,
            self.names.group(RESULTS_GROUP),
            [self.topic],
            self.handle,
            batch_size=self.batch_size,
        )

    async def handle(self, messages: list[Message]) -> None:
        if self.hold is not None:
            await self.hold.wait(messages)
        await self.apply([m.value() for m in messages])

    async def apply(self, raws: Sequence[bytes | None]) -> BatchReport:
        """Process one batch of raw `publish.result` values (the unit of a transaction)."""
        try:
            return await self._apply(raws)
        except (psycopg.DataError, psycopg.IntegrityError, InvalidMessage) as exc:
            # A value Postgres (or an event schema) refuses must not stop the consumer:
            # isolate it and set it aside as an invalid message.
            if len(raws) > 1:
                log.warning("batch refused; retrying one by one", extra={"error": _first_line(exc)})
                reports = [await self.apply([raw]) for raw in raws]
                return BatchReport(
                    len(raws),
                    sum(r.invalid for r in reports),
                    sum(r.duplicates for r in reports),
                    dict(sum((Counter(r.decisions) for r in reports), Counter())),
                )
            return await self._apply(raws, refused=InvalidMessage(f"refused: {_first_line(exc)}"))

    async def _apply(
        self, raws: Sequence[bytes | None], *, refused: InvalidMessage | None = None
    ) -> BatchReport:
        incoming: list[Result] = []
        invalid: list[Invalid] = []
        for raw in raws:
            try:
                if refused is not None:
                    raise refused
                incoming.append(decode_result(raw))
            except InvalidMessage as exc:
                invalid.append(Invalid(raw, exc, *codec.identity(raw)))
        now = codec.now_utc()
        async with self.rt.db.transaction() as conn:
            named = {i.job_id for i in incoming} | {b.job_id for b in invalid if b.job_id}
            rows = await records.lock_jobs(conn, sorted(named))
            known = []
            for inc in incoming:
                problem = records.mismatch(inc, rows.get(inc.job_id))
                if problem is None:
                    known.append(inc)
                else:
                    invalid.append(
                        Invalid(inc.raw, InvalidMessage(problem), inc.job_id, inc.attempt)
                    )
            fresh = await records.insert_attempts(conn, known)
            plan = self._plan(known, fresh, rows, now)
            self._strand(plan, invalid)
            await records.update_jobs(conn, plan.locked, plan.original)
            await records.release_reauthorised(conn, plan.locked)
            summaries = await records.attempt_summaries(conn, [str(d.row["id"]) for d in plan.dead])
            async with conn.pipeline():
                for dead in plan.dead:
                    row = dead.row
                    await dead_letters.insert(
                        conn,
                        self.names,
                        reason=dead.reason.value,
                        job_id=str(row["id"]),
                        tenant_id=row["tenant_id"],
                        platform=row["platform"],
                        connection_id=str(row["connection_id"]),
                        attempt=dead.attempt,
                        last_error=row["last_error"],
                        request=job_fields(row),
                        last_result=dead.last_result,
                        attempt_summary=summaries.get(str(row["id"]), []),
                        trace_id=dead.trace_id,
                        raw=dead.raw,
                        source_topic=self.topic if dead.raw is not None else None,
                    )
                for bad in invalid:
                    if bad.stranded:
                        continue
                    await dead_letters.insert(
                        conn,
                        self.names,
                        reason=DeadLetterReason.INVALID_MESSAGE,
                        job_id=bad.job_id,
                        tenant_id=None,
                        raw=bad.raw or b"",
                        source_topic=self.topic,
                        last_error={
                            "code": "invalid_message",
                            "message": str(bad.error),
                            "fields": bad.error.fields,
                        },
                    )
                await outbox.add(conn, self.names, plan.events)
        await self._mirror(plan)
        # Once committed (an INFO line per job was a tenth of this service's CPU time): each
        # result's job id, attempt, trace id, outcome, the status it left the job in and why
        # (`note` when the job did not move).
        APPLIED.add(plan.logged)
        self._observe(plan)
        letters = sum(not bad.stranded for bad in invalid)
        if letters:
            metrics.DEAD_LETTERED.labels(DeadLetterReason.INVALID_MESSAGE.value).inc(letters)
        return BatchReport(len(raws), len(invalid), plan.duplicates, dict(plan.decisions))

    def _plan(
        self,
        known: list[Result],
        fresh: set[tuple[str, int]],
        rows: dict[str, Row],
        now: datetime,
    ) -> Plan:
        plan = Plan(locked=rows)
        states: dict[str, JobState] = {}
        horizon = now + timedelta(seconds=self.rt.settings.redis_horizon_seconds)
        for inc in known:
            row = rows[inc.job_id]
            if (inc.job_id, inc.attempt) not in fresh:
                plan.duplicates += 1
                if inc.attempt == row["attempt_count"]:
                    plan.touched.add(inc.job_id)  # its Redis write may have been lost: repeat it
                log.debug(
                    "duplicate result",
                    extra=records.log_fields(
                        inc,
                    ),
                )
                continue
            fresh.discard((inc.job_id, inc.attempt))  # a second copy in this batch is a duplicate
            state = states.get(inc.job_id) or records.job_state(row)
            decision = decide(state, records.attempt_result(inc), self.config, self.rand)
            states[inc.job_id] = decision.state
            plan.decisions[decision.action.value] += 1
            if not decision.moved:
                plan.logged.append(
                    records.log_fields(inc, note=decision.reason, status=row["status"])
                )
                continue
            plan.original.setdefault(inc.job_id, row["status"])
            self._move(plan, row, inc, decision, horizon)
        return plan

    @staticmethod
    def _move(plan: Plan, row: Row, inc: Result, decision: Decision, horizon: datetime) -> None:
        new = decision.state
        _set_state(row, decision, horizon)
        row["provider_ids"] = {
            k: str(v) for k, v in {**(row["provider_ids"] or {}), **inc.provider_ids}.items()
        }
        if decision.action is Action.PUBLISH:
            row["published_at"] = inc.published_at or inc.finished_at
            plan.published.append(row)
        else:
            held = decision.reason == NEEDS_REAUTH
            row["last_error"] = records.last_error(inc, may_be_live=new.may_be_live, held=held)
        if decision.dead_letter is not None:
            plan.dead.append(
                Dead(decision.dead_letter, dict(row), inc.attempt, inc.trace_id, inc.value)
            )
        plan.touched.add(inc.job_id)
        plan.events.append(status_event(row, new.status, reason=decision.reason))
        plan.logged.append(
            records.log_fields(
                inc,
                status=new.status.value,
                reason=decision.reason,
                next_attempt_at=new.next_attempt_at,
            )
        )

    @staticmethod
    def _strand(plan: Plan, invalid: list[Invalid]) -> None:
        """Jobs waiting for the answer an unreadable result held: `unreadable_result`."""
        for bad in invalid:
            job_id = bad.job_id
            row = plan.locked.get(job_id) if job_id else None
            if job_id is None or row is None or bad.attempt not in (None, row["attempt_count"]):
                continue  # no such job, or an answer to an earlier attempt: nothing waits
            decision = unreadable_result(records.job_state(row))
            if not decision.moved:
                continue
            attempt = int(row["attempt_count"])
            plan.original.setdefault(job_id, row["status"])
            _set_state(row, decision, horizon=None)
            row["last_error"] = {
                "outcome": DeadLetterReason.UNREADABLE_RESULT.value,
                "attempt": attempt,
                "code": None,
                "subcode": None,
                "message": f"the publisher's result could not be read ({bad.error}); the post"
                " may be live: check it, then retry with force",
                "fields": bad.error.fields,
                "may_be_live": True,
            }
            plan.dead.append(
                Dead(
                    DeadLetterReason.UNREADABLE_RESULT,
                    dict(row),
                    attempt,
                    str(row["trace_id"]),
                    raw=bad.raw or b"",
                )
            )
            bad.stranded = True
            plan.touched.add(job_id)
            plan.events.append(status_event(row, decision.state.status, reason=decision.reason))
            plan.logged.append(
                {
                    "job_id": bad.job_id,
                    "attempt": attempt,
                    "status": row["status"],
                    "reason": decision.reason,
                }
            )

    async def _mirror(self, plan: Plan) -> None:
        """Redis follows Postgres for every job the batch moved (or saw again)."""
        add: list[Row] = []
        remove: list[str] = []
        for job_id in plan.touched:
            row = plan.locked[job_id]
            if row["status"] == JobStatus.RETRY_SCHEDULED and row["queued"]:
                add.append(row)
            elif row["status"] == JobStatus.PUBLISHED:
                remove.append(job_id)
        try:
            await self.rt.queue.add(jobs.queue_entries(add))
            await self.rt.queue.remove(remove)
        except StoreUnavailable:
            raise
        except Exception as exc:  # committed: the redelivered batch or the reconciler repairs
            raise StoreUnavailable("redis", str(exc)) from exc

    @staticmethod
    def _observe(plan: Plan) -> None:
        metrics.RETRIES_SCHEDULED.inc(plan.decisions.get(Action.RETRY.value, 0))
        for dead in plan.dead:  # counted after the commit: a retried batch counts once
            metrics.DEAD_LETTERED.labels(dead.reason.value).inc()
        for row in plan.published:
            lag = (row["published_at"] - row["scheduled_at"]).total_seconds()
            metrics.END_TO_END_LAG.observe(max(lag, 0.0))


def _set_state(row: Row, decision: Decision, horizon: datetime | None) -> None:
    """Write a decision's state into the locked row (`queued` when its retry falls within the
    Redis horizon)."""
    new = decision.state
    row.update(
        status=new.status.value,
        failed_attempts=new.failed_attempts,
        next_attempt_at=new.next_attempt_at,
        check_only=new.check_only,
        force_required=new.force_required,
        queued=horizon is not None
        and new.status is JobStatus.RETRY_SCHEDULED
        and new.next_attempt_at is not None
        and new.next_attempt_at <= horizon,
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
