"""What one batch of results reads and writes: the rows it locks, the attempts it inserts,
the jobs it moves and the context of its dead letters (the statements live in
`herald.shared.stores`; this module shapes their rows)."""

from __future__ import annotations

from typing import Any

import psycopg

from herald.services.results.policy import AttemptResult, JobState
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import NEEDS_REAUTH
from herald.shared.infra.db.pool import BY_KEY, Row
from herald.shared.messages import codec
from herald.shared.messages.result import Result
from herald.shared.stores import attempts, jobs

SUMMARY_LIMIT = 50  # attempts per dead letter's summary (the newest)


def attempt_result(inc: Result) -> AttemptResult:
    return AttemptResult(
        inc.attempt, inc.outcome, inc.finished_at, inc.retry_after, inc.may_be_live
    )


def last_error(inc: Result, *, may_be_live: bool, held: bool = False) -> dict[str, Any]:
    """The job's `last_error` after this result (`may_be_live` feeds the policy). A job
    `held` for a new token says so in `code` (`needs_reauth`); the platform's own code, if
    any, stays in `platform_code`."""
    if held:
        return {
            **last_error(inc, may_be_live=may_be_live),
            "code": NEEDS_REAUTH,
            "platform_code": inc.value.get("error_code"),
        }
    return {
        "outcome": inc.outcome.value,
        "attempt": inc.attempt,
        "code": inc.value.get("error_code"),
        "subcode": inc.value.get("error_subcode"),
        "message": inc.value.get("error_message"),
        "may_be_live": may_be_live,
    }


def log_fields(inc: Result, **more: Any) -> dict[str, Any]:
    return {
        "job_id": inc.job_id,
        "attempt": inc.attempt,
        "outcome": inc.outcome.value,
        "trace_id": inc.trace_id,
        **more,
    }


def mismatch(inc: Result, row: Row | None) -> str | None:
    if row is None:
        return f"unknown job {inc.job_id}"
    for key, mine in (
        ("tenant_id", inc.tenant_id),
        ("platform", inc.platform),
        ("connection_id", inc.connection_id),
    ):
        if str(row[key]) != mine:
            return f"{key} {mine} does not match job {inc.job_id}"
    return None


def job_state(row: Row) -> JobState:
    return JobState(
        status=JobStatus(row["status"]),
        attempt_count=int(row["attempt_count"]),
        failed_attempts=int(row["failed_attempts"]),
        publish_deadline=row["publish_deadline"],
        next_attempt_at=row["next_attempt_at"],
        check_only=bool(row["check_only"]),
        force_required=bool(row["force_required"]),
        may_be_live=bool((row["last_error"] or {}).get("may_be_live")),
    )


async def lock_jobs(conn: psycopg.AsyncConnection[Row], job_ids: list[str]) -> dict[str, Row]:
    """Lock the batch's jobs in id order (concurrent batches then never deadlock); the
    transaction keeps to index lookups (`BY_KEY`) from here on."""
    if not job_ids:
        return {}
    async with conn.pipeline():
        await conn.execute(BY_KEY)
        locked = await jobs.lock(conn, job_ids)
    return locked


async def insert_attempts(
    conn: psycopg.AsyncConnection[Row], incoming: list[Result]
) -> set[tuple[str, int]]:
    """Insert attempt rows; answers the (job id, attempt) pairs that were new. Of several
    copies of one attempt in a batch, the first is the one written."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for i in incoming:
        if (i.job_id, i.attempt) in rows:
            continue
        rows[(i.job_id, i.attempt)] = {
            "job_id": i.job_id,
            "attempt": i.attempt,
            "worker": i.worker,
            "started_at": i.started_at,
            "finished_at": i.finished_at,
            "outcome": i.outcome.value,
            "error_code": i.value.get("error_code"),
            "error_subcode": i.value.get("error_subcode"),
            "error_message": i.value.get("error_message"),
            "retry_after": i.retry_after,
            "provider_ids": i.provider_ids,
            "provider_response": i.value.get("provider_response") or None,
        }
    return await attempts.insert(conn, list(rows.values()))


async def update_jobs(
    conn: psycopg.AsyncConnection[Row], rows: dict[str, Row], original: dict[str, str]
) -> None:
    """Write the moved jobs, each guarded by the status it had under the lock."""
    if not original:
        return
    values = []
    for job_id in sorted(original):
        r = rows[job_id]
        values.append(
            {
                "id": job_id,
                "before": original[job_id],
                "status": r["status"],
                "failed_attempts": r["failed_attempts"],
                "next_attempt_at": r["next_attempt_at"],
                "queued": r["queued"],
                "check_only": r["check_only"],
                "force_required": r["force_required"],
                "published_at": r["published_at"],
                "provider_ids": r["provider_ids"] or {},
                "last_error": r["last_error"],  # None: SQL NULL (json_to_recordset maps null)
            }
        )
    written = await jobs.apply_results(conn, values)
    if written != len(values):
        raise RuntimeError(f"{len(values) - written} jobs changed under their locks")


async def attempt_summaries(
    conn: psycopg.AsyncConnection[Row], job_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in await attempts.summaries(conn, job_ids):
        out.setdefault(str(r["job_id"]), []).append(
            {
                "attempt": r["attempt"],
                "outcome": r["outcome"],
                "error_code": r["error_code"],
                "error_subcode": r["error_subcode"],
                "error_message": r["error_message"],
                "worker": r["worker"],
                "started_at": codec.iso(r["started_at"]),
                "finished_at": codec.iso(r["finished_at"]),
            }
        )
    return {job: items[-SUMMARY_LIMIT:] for job, items in out.items()}


async def release_reauthorised(conn: psycopg.AsyncConnection[Row], locked: dict[str, Row]) -> None:
    """Jobs this batch held for a new token whose connection has one already (it came while
    their attempt failed, so the connection service found nothing to release): due now."""
    held = [
        job_id
        for job_id, row in locked.items()
        if row["status"] == JobStatus.RETRY_SCHEDULED
        and (row["last_error"] or {}).get("code") == NEEDS_REAUTH
    ]
    if held:
        for r in await jobs.release_if_reauthorised(conn, held):
            locked[str(r["id"])].update(next_attempt_at=r["next_attempt_at"], queued=True)
