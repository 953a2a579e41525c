"""The `attempts` table: one row per attempt of a job, written by the results service from
`publish.result` (unique on (job id, attempt): a redelivered result changes nothing)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from herald.shared.infra.db.pool import Database, Row, id_array, json_rows

Conn = psycopg.AsyncConnection[Row]

# A batch's rows in one JSON parameter (`json_to_recordset`): `unnest` of typed arrays
# measured slower in Python (a jsonb[] element is dumped one by one) and, estimated at 500
# rows, was planned as a hash join over a sequential scan of `jobs`. error_code and
# error_subcode travel as float8 and are cast as the row-by-row statement's parameters were
# (a schema-valid `2.0` is stored as 2).
_INSERT = """
INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome, error_code,
                      error_subcode, error_message, retry_after, provider_ids, provider_response)
SELECT v.job_id, v.attempt, v.worker, v.started_at, v.finished_at, v.outcome, v.error_code::int,
       v.error_subcode::int, v.error_message, v.retry_after, v.provider_ids, v.provider_response
FROM json_to_recordset(%s::json) AS v(
    job_id uuid, attempt int, worker text, started_at timestamptz, finished_at timestamptz,
    outcome text, error_code float8, error_subcode float8, error_message text,
    retry_after float8, provider_ids jsonb, provider_response jsonb)
ON CONFLICT (job_id, attempt) DO NOTHING
RETURNING job_id::text AS job_id, attempt
"""


async def insert(conn: Conn, rows: list[dict[str, Any]]) -> set[tuple[str, int]]:
    """Insert attempt rows (each names every column of `_INSERT`); answers the (job id,
    attempt) pairs that were new."""
    if not rows:
        return set()
    cur = await conn.execute(_INSERT, (json_rows(rows),))
    return {(r["job_id"], r["attempt"]) for r in await cur.fetchall()}


async def of_jobs(conn: Conn, keys: str) -> Any:
    """The attempts of these jobs, for the publisher's claim (a cursor: pipelined)."""
    return await conn.execute(
        "SELECT job_id::text AS job_id, attempt, outcome, provider_ids, finished_at"
        " FROM attempts WHERE job_id = ANY(%s::uuid[])",
        (keys,),
    )


async def summaries(conn: Conn, job_ids: list[str]) -> list[Row]:
    """Every attempt of these jobs, oldest first (for their dead letters)."""
    if not job_ids:
        return []
    cur = await conn.execute(
        "SELECT job_id, attempt, outcome, error_code, error_subcode, error_message, worker,"
        " started_at, finished_at FROM attempts WHERE job_id = ANY(%s::uuid[])"
        " ORDER BY job_id, attempt",
        (id_array(job_ids),),
    )
    return await cur.fetchall()


async def of_job(db: Database, job_id: Any) -> list[Row]:
    """One job's attempts, newest first (the API)."""
    return await db.fetch(
        "SELECT * FROM attempts WHERE job_id = %s ORDER BY attempt DESC", (job_id,)
    )


async def prune_responses(conn: Conn, before: datetime, limit: int) -> int:
    """Drop the provider responses of attempts finished before `before` (at most `limit`)."""
    cur = await conn.execute(
        "UPDATE attempts SET provider_response = NULL WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM attempts WHERE provider_response IS NOT NULL AND finished_at < %s"
        " LIMIT %s))",
        (before, limit),
    )
    return cur.rowcount
