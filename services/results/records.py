"""The results service's values and SQL: parsing `publish.result`, and one batch's
statements (locks, attempt rows, job updates, dead-letter context)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
import psycopg

from herald.services.results.policy import AttemptResult, JobState
from herald.shared.domain.jobs import JobStatus
from herald.shared.infra.db.pool import Row, id_array
from herald.shared.jobs.views import JOB_COLUMNS
from herald.shared.messages import codec
from herald.shared.messages.result import Result

SUMMARY_LIMIT = 50  # attempts per dead letter's summary (the newest)

# Each batch writes its attempts and its jobs with one statement apiece, the rows passed as
# one JSON parameter (`jsonb_to_recordset`): a statement per row cost 20,000 executions per
# 20,000 results; `unnest` of typed arrays measured slower in Python (a jsonb[] element is
# dumped one by one) and, estimated at 500 rows, was planned as a hash join over a
# sequential scan of `jobs`. error_code/error_subcode travel as float8 and are cast as the
# row-by-row statement's parameters were (a schema-valid `2.0` is stored as 2).
_INSERT_ATTEMPTS = """
INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error_code,
                      error_subcode, error_message, retry_after, provider_ids, provider_response)
SELECT v.job_id, v.attempt, v.worker, v.started_at, v.finished_at, v.outcome, v.error_code::int,
       v.error_subcode::int, v.error_message, v.retry_after, v.provider_ids, v.provider_response
FROM jsonb_to_recordset(%s::jsonb) AS v(
    job_id uuid, attempt int, worker text, started_at timestamptz, finished_at timestamptz,
    outcome text, error_code float8, error_subcode float8, error_message text,
    retry_after float8, provider_ids jsonb, provider_response jsonb)
ON CONFLICT (job_id, attempt) DO NOTHING
RETURNING job_id::text AS job_id, attempt
"""
_UPDATE_JOBS = """
UPDATE jobs AS j
SET status = v.status, failed_attempts = v.failed_attempts, next_attempt_at = v.next_attempt_at,
    queued = v.queued, check_only = v.check_only, force_required = v.force_required,
    published_at = v.published_at, provider_ids = v.provider_ids, last_error = v.last_error,
    updated_at = now()
FROM jsonb_to_recordset(%s::jsonb) AS v(
    id uuid, before text, status text, failed_attempts int, next_attempt_at timestamptz,
    queued boolean, check_only boolean, force_required boolean, published_at timestamptz,
    provider_ids jsonb, last_error jsonb)
WHERE j.id = v.id AND j.status = v.before
"""
# Every statement of a batch touches rows by key; as in the publisher's claims (BY_KEY there),
# keep the planner off sequential scans and hash joins for the transaction: on a 20,000-row
# `jobs` table it otherwise scans the table whole to lock 500 rows (2.8 ms instead of 1.8 ms),
# and the cost grows with the table, not the batch.
BY_KEY = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true)"
)


def attempt_result(inc: Result) -> AttemptResult:
    return AttemptResult(
        inc.attempt, inc.outcome, inc.finished_at, inc.retry_after, inc.may_be_live
    )


def last_error(inc: Result, *, may_be_live: bool) -> dict[str, Any]:
    """The job's `last_error` after this result (`may_be_live` feeds the policy)."""
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
    """Lock the batch's jobs in id order (concurrent batches then never deadlock); also sets
    the transaction's planner hints (`BY_KEY`) for this and the batch's later statements."""
    if not job_ids:
        return {}
    async with conn.pipeline():
        await conn.execute(BY_KEY)
        cur = await conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
            (id_array(job_ids),),
        )
    return {str(r["id"]): r for r in await cur.fetchall()}


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
    if not rows:
        return set()
    cur = await conn.execute(_INSERT_ATTEMPTS, (_json(list(rows.values())),))
    return {(r["job_id"], r["attempt"]) for r in await cur.fetchall()}


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
                "last_error": r["last_error"],  # None: SQL NULL (jsonb_to_recordset maps null)
            }
        )
    cur = await conn.execute(_UPDATE_JOBS, (_json(values),))
    if cur.rowcount != len(values):
        raise RuntimeError(f"{len(values) - cur.rowcount} jobs changed under their locks")


def _json(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON parameter for `jsonb_to_recordset`."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # an integer beyond 64 bits (read back from a jsonb column): stdlib
        return json.dumps(rows, default=_instant_json)


def _instant_json(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


async def attempt_summaries(
    conn: psycopg.AsyncConnection[Row], job_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    if not job_ids:
        return {}
    cur = await conn.execute(
        "SELECT job_id, attempt, outcome, error_code, error_subcode, error_message, worker,"
        " started_at, finished_at FROM attempts WHERE job_id = ANY(%s::uuid[])"
        " ORDER BY job_id, attempt",
        (id_array(job_ids),),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in await cur.fetchall():
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
