"""The `jobs` table: every statement that reads or writes it (one more writes `container_id`
and the publish stamps together with the claim that allows it: `stores.claims.HOLD`).

Who calls what: the job service (schedule, read, cancel, reschedule, operator retries,
releasing jobs held for a new token), the
dispatcher (`mark_dispatched`, `dead_letter`), the reconciler (`page_in`, `queued_due`,
`queued`, `unclaimed`, `stuck`), the publisher's claim transaction (`lock_for_claim`,
`stamp_call_started`) and the results service (`lock`, `apply_results`,
`release_if_reauthorised`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from herald.shared.domain.outcomes import NEEDS_REAUTH
from herald.shared.infra.db.pool import Database, Row, id_array, json_rows
from herald.shared.infra.delayed_queue import Due

COLUMNS = (
    "id, tenant_id, post_id, platform, connection_id, media_asset_ids, caption, media_type,"
    " scheduled_at, publish_deadline, deadline_explicit, status, attempt_count, failed_attempts,"
    " next_attempt_at, dispatched_at, call_started_at, container_id, published_at, provider_ids,"
    " last_error, force_required, request_hash, trace_id, created_at, updated_at, queued,"
    " check_only"
)
Conn = psycopg.AsyncConnection[Row]

# ---- the job service ------------------------------------------------------------------------

# One statement for a batch of new jobs: the rows as one JSON parameter (`json_rows`), so a
# thousand jobs cost one round trip and one parameter to adapt.
_INSERT_MANY = """
INSERT INTO jobs (id, tenant_id, post_id, platform, connection_id, media_asset_ids, caption,
    media_type, scheduled_at, publish_deadline, deadline_explicit, status, next_attempt_at,
    queued, request_hash, trace_id, created_at, updated_at)
SELECT id, tenant_id, post_id, platform, connection_id, media_asset_ids, caption, media_type,
    scheduled_at, publish_deadline, deadline_explicit, 'SCHEDULED', scheduled_at, queued,
    request_hash, trace_id, %(now)s, %(now)s
FROM json_to_recordset(%(rows)s::json) AS r(id uuid, tenant_id text, post_id uuid,
    platform text, connection_id uuid, media_asset_ids text[], caption text, media_type text,
    scheduled_at timestamptz, publish_deadline timestamptz, deadline_explicit boolean,
    queued boolean, request_hash text, trace_id text)
"""
_NEW_COLUMNS = [
    "id",
    "tenant_id",
    "post_id",
    "platform",
    "connection_id",
    "media_asset_ids",
    "caption",
    "media_type",
    "scheduled_at",
    "publish_deadline",
    "deadline_explicit",
    "queued",
    "request_hash",
    "trace_id",
]


async def insert_many(conn: Conn, jobs: list[dict[str, Any]], *, now: datetime) -> None:
    """New SCHEDULED jobs (each names the columns of `_NEW_COLUMNS`), created at `now`."""
    rows = [{k: job[k] for k in _NEW_COLUMNS} for job in jobs]
    await conn.execute(_INSERT_MANY, {"rows": json_rows(rows), "now": now})


async def get(db: Database | Conn, job_id: Any) -> Row | None:
    sql = f"SELECT {COLUMNS} FROM jobs WHERE id = %s"
    if isinstance(db, Database):
        return await db.fetchone(sql, (job_id,))
    cur = await db.execute(sql, (job_id,))
    return await cur.fetchone()


async def existing(conn: Conn, ids: list[str]) -> list[Row]:
    cur = await conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ANY(%s)", (ids,))
    return await cur.fetchall()


async def request_hashes(conn: Conn, ids: list[str]) -> dict[str, str]:
    cur = await conn.execute("SELECT id, request_hash FROM jobs WHERE id = ANY(%s)", (ids,))
    return {str(r["id"]): r["request_hash"] for r in await cur.fetchall()}


async def page(db: Database, filters: dict[str, Any]) -> list[Row]:
    """Newest first, after the cursor (`after_ts`, `after_id`), `limit` rows; every filter
    optional (`tenant`, `status`, `platform`, `conn`, `post`)."""
    return await db.fetch(
        f"SELECT {COLUMNS} FROM jobs WHERE"
        " (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
        " AND (%(status)s::text IS NULL OR status = %(status)s)"
        " AND (%(platform)s::text IS NULL OR platform = %(platform)s)"
        " AND (%(conn)s::uuid IS NULL OR connection_id = %(conn)s)"
        " AND (%(post)s::uuid IS NULL OR post_id = %(post)s)"
        " AND (%(after_ts)s::timestamptz IS NULL"
        "      OR (created_at, id) < (%(after_ts)s, %(after_id)s::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
        filters,
    )


async def cancel(conn: Conn, job_id: Any, sources: list[str]) -> Row | None:
    """CANCELLED from one of `sources`, unless its platform call has started."""
    cur = await conn.execute(
        f"UPDATE jobs SET status = 'CANCELLED', next_attempt_at = NULL, updated_at = now()"
        f" WHERE id = %s AND call_started_at IS NULL AND status = ANY(%s) RETURNING {COLUMNS}",
        (job_id, sources),
    )
    return await cur.fetchone()


async def reschedule(conn: Conn, job_id: Any, change: dict[str, Any]) -> Row | None:
    """A SCHEDULED job's time, caption and deadline (`change` names them all)."""
    cur = await conn.execute(
        f"UPDATE jobs SET scheduled_at = %(scheduled_at)s, next_attempt_at = %(scheduled_at)s,"
        f" caption = %(caption)s, publish_deadline = %(publish_deadline)s,"
        f" deadline_explicit = %(deadline_explicit)s, queued = %(queued)s, updated_at = now()"
        f" WHERE id = %(id)s AND status = 'SCHEDULED' RETURNING {COLUMNS}",
        change | {"id": job_id},
    )
    return await cur.fetchone()


async def requeue_now(
    conn: Conn, ids: list[Any], *, now: datetime, deadline: datetime, force: bool
) -> list[Row]:
    """Operator retry or redrive: RETRY_SCHEDULED now, a fresh budget and (where it was
    implicit) a new deadline; `force_required` ones only with `force`."""
    cur = await conn.execute(
        f"UPDATE jobs SET status = 'RETRY_SCHEDULED', next_attempt_at = %s, failed_attempts = 0,"
        f" queued = true, force_required = false,"
        f" publish_deadline = CASE WHEN deadline_explicit THEN publish_deadline ELSE %s END,"
        f" updated_at = now()"
        f" WHERE id = ANY(%s) AND status IN ('DEAD_LETTERED', 'RETRY_SCHEDULED')"
        f" AND (%s OR NOT force_required) RETURNING {COLUMNS}",
        (now, deadline, ids, force),
    )
    return await cur.fetchall()


async def release_held(conn: Conn, connection_id: str) -> list[Row]:
    """The connection's jobs held for a new token (`last_error.code` = needs_reauth):
    due now (`jobs_open_by_connection`, migration 0008)."""
    cur = await conn.execute(
        f"UPDATE jobs SET next_attempt_at = now(), queued = true, updated_at = now()"
        f" WHERE connection_id = %s AND next_attempt_at IS NOT NULL"
        f" AND status = 'RETRY_SCHEDULED' AND last_error->>'code' = %s"
        f" RETURNING {COLUMNS}",
        (connection_id, NEEDS_REAUTH),
    )
    return await cur.fetchall()


async def release_if_reauthorised(conn: Conn, ids: list[str]) -> list[Row]:
    """Of these jobs just held for a new token, those whose connection is `active` again
    (a new token came while their attempt was failing): due now (id, tenant, due time)."""
    cur = await conn.execute(
        "UPDATE jobs j SET next_attempt_at = now(), queued = true"
        " FROM connections c WHERE j.id = ANY(%s::uuid[]) AND c.id = j.connection_id"
        " AND c.status = 'active' AND j.status = 'RETRY_SCHEDULED'"
        " AND j.last_error->>'code' = %s RETURNING j.id, j.tenant_id, j.next_attempt_at",
        (ids, NEEDS_REAUTH),
    )
    return await cur.fetchall()


# ---- the dispatcher --------------------------------------------------------------------------

# A due instant's round trip through a Redis score (a double of epoch seconds) and back.
_SCORE_ROUNDING = 0.001

# A heap-only update (migration 0005, decision 0011): it changes no indexed column, so it
# leaves the job's indexes alone. next_attempt_at keeps the attempt's due instant, which is
# how the reconciler finds the job if it sticks. An IN_PROGRESS job is dispatched again, with
# the same attempt, once its lease has passed while no publisher holds that attempt: none
# claimed it (its request may never have reached Kafka), or its holder stopped renewing the
# claim a lease ago without storing a result (it died after the request's offset was
# committed). After HERALD_STUCK_AFTER_SECONDS it is dispatched again in any case.
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
    (old.status IN ('SCHEDULED', 'RETRY_SCHEDULED')
        AND jobs.next_attempt_at <= to_timestamp(%(due_by)s))
    OR (old.status = 'IN_PROGRESS' AND jobs.dispatched_at < now() - %(lease)s * interval '1 s'
        AND (NOT EXISTS (SELECT 1 FROM publish_claims c
                         WHERE c.job_id = jobs.id AND c.attempt = jobs.attempt_count
                         AND (c.result IS NOT NULL
                              OR c.lease_until > now() - %(lease)s * interval '1 s'))
             OR jobs.dispatched_at < now() - %(stuck)s * interval '1 s'))
)
RETURNING jobs.id, jobs.tenant_id, jobs.post_id, jobs.platform, jobs.connection_id,
    jobs.attempt_count, jobs.media_asset_ids, jobs.caption, jobs.media_type, jobs.scheduled_at,
    jobs.publish_deadline, jobs.dispatched_at, jobs.trace_id, jobs.provider_ids,
    jobs.next_attempt_at, jobs.published_at, jobs.check_only, old.status AS old_status,
    (SELECT c.placement FROM connections c WHERE c.id = jobs.connection_id) AS placement
"""


async def mark_dispatched(
    conn: Conn, ids: list[str], *, due_by: float, lease: float, stuck: float
) -> list[Row]:
    """IN_PROGRESS (attempt + 1, or the same attempt again for a lost or stuck dispatch) for
    every claimed job still due by `due_by` (epoch seconds: the latest due instant of the
    claim); each row with its old status and its connection's place.

    `due_by` comes from the claim, not from a clock: a job moved later behind the queue's
    back is refused, while a scheduler whose clock runs ahead of Postgres's still has
    every job it claimed accepted (compared with Postgres's `now()`, the jobs at the edge
    of its claim were refused and waited for the reconciler)."""
    cur = await conn.execute(
        _MARK_DISPATCHED,
        {"ids": id_array(ids), "due_by": due_by + _SCORE_ROUNDING, "lease": lease, "stuck": stuck},
    )
    return await cur.fetchall()


async def dead_letter(conn: Conn, job_id: Any, last_error: dict[str, Any]) -> Row:
    """DEAD_LETTERED at once, with its error (a job that cannot be sent)."""
    cur = await conn.execute(
        "UPDATE jobs SET status = 'DEAD_LETTERED', next_attempt_at = NULL, queued = false,"
        f" last_error = %s, updated_at = now() WHERE id = %s RETURNING {COLUMNS}",
        (Jsonb(last_error), job_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# ---- the reconciler -------------------------------------------------------------------------


def queue_entries(rows: Iterable[Mapping[str, Any]]) -> dict[str, Due]:
    """The delayed queue's entries for these rows (`id`, `tenant_id`, `next_attempt_at`);
    rows without a due time are left out."""
    return {
        str(r["id"]): Due(str(r["tenant_id"]), r["next_attempt_at"].timestamp())
        for r in rows
        if r["next_attempt_at"] is not None
    }


async def page_in(db: Database, *, horizon: float, limit: int) -> list[Row]:
    """Waiting jobs that came within the Redis horizon, marked `queued` (id, tenant, due
    instant)."""
    return await db.fetch(
        "UPDATE jobs SET queued = true WHERE id IN ("
        " SELECT id FROM jobs WHERE status IN ('SCHEDULED', 'RETRY_SCHEDULED')"
        " AND NOT queued AND next_attempt_at <= now() + %s * interval '1 s'"
        " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, tenant_id, next_attempt_at",
        (horizon, limit),
    )


_BEFORE_ALL = (datetime.min.replace(tzinfo=UTC), "00000000-0000-0000-0000-000000000000")


async def queued_due(
    db: Database, *, after: tuple[datetime, str] | None, within: float, limit: int
) -> tuple[list[str], tuple[datetime, str] | None]:
    """Ids of waiting jobs Redis should hold that are due within `within` seconds (or
    overdue), in (due instant, id) order from the start or after `after`, and where the
    next page starts (None after the last). A page is one stretch of the open-jobs index
    (migration 0011), and its ids come as one text value: a reconcile pass reads every
    waiting job of a backlog, and a row built per job cost more than the read."""
    row = await db.fetchone(
        "SELECT string_agg(id::text, ',' ORDER BY next_attempt_at, id) AS ids,"
        " max(next_attempt_at) AS last_due FROM (SELECT id, next_attempt_at FROM jobs"
        " WHERE (next_attempt_at, id) > (%s::timestamptz, %s::uuid)"
        " AND next_attempt_at <= now() + %s * interval '1 s'"
        " AND status IN ('SCHEDULED', 'RETRY_SCHEDULED') AND queued"
        " ORDER BY next_attempt_at, id LIMIT %s) page",
        (*(after or _BEFORE_ALL), within, limit),
    )
    ids: list[str] = row["ids"].split(",") if row and row["ids"] else []
    return ids, (row["last_due"], ids[-1]) if row and len(ids) == limit else None


async def queued(db: Database, ids: list[str]) -> list[Row]:
    """Those of these jobs still waiting and queued (id, tenant, due instant)."""
    return await db.fetch(
        "SELECT id, tenant_id, next_attempt_at FROM jobs WHERE id = ANY(%s::uuid[])"
        " AND status IN ('SCHEDULED', 'RETRY_SCHEDULED') AND queued",
        (ids,),
    )


async def unclaimed(db: Database, *, lease: float, limit: int) -> list[Row]:
    """IN_PROGRESS jobs dispatched over a lease ago whose attempt no publisher holds: never
    claimed, or its claim's lease ran out a lease ago with no result stored (the dispatcher's
    mark makes the same test before it sends them again)."""
    return await db.fetch(
        # An IN_PROGRESS job keeps its attempt's due instant, never later than its dispatch:
        # the first condition lets the open-jobs index narrow the search.
        "SELECT id, tenant_id FROM jobs j"
        " WHERE next_attempt_at < now() - %(lease)s * interval '1 s'"
        " AND status = 'IN_PROGRESS' AND dispatched_at < now() - %(lease)s * interval '1 s'"
        " AND NOT EXISTS (SELECT 1 FROM publish_claims c"
        "   WHERE c.job_id = j.id AND c.attempt = j.attempt_count"
        "   AND (c.result IS NOT NULL OR c.lease_until > now() - %(lease)s * interval '1 s'))"
        " ORDER BY dispatched_at LIMIT %(limit)s",
        {"lease": lease, "limit": limit},
    )


async def stuck(db: Database, *, after: float, limit: int) -> list[Row]:
    """IN_PROGRESS jobs dispatched more than `after` seconds ago."""
    return await db.fetch(
        "SELECT id, tenant_id FROM jobs WHERE next_attempt_at < now() - %(after)s * interval '1 s'"
        " AND status = 'IN_PROGRESS' AND dispatched_at < now() - %(after)s * interval '1 s'"
        " ORDER BY dispatched_at LIMIT %(limit)s",
        {"after": after, "limit": limit},
    )


# ---- the publisher ---------------------------------------------------------------------------


async def lock_for_claim(conn: Conn, keys: str) -> Any:
    """The claim transaction's read of its jobs, locked in id order (a cursor: pipelined)."""
    return await conn.execute(
        "SELECT id AS job_id, status, publish_deadline, container_id, published_at, provider_ids,"
        " connection_id, publish_sent_at IS NOT NULL AS publish_sent, child_container_ids,"
        " coalesce(last_error->'may_be_live' = 'true'::jsonb, false) AS may_be_live"
        " FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (keys,),
    )


async def stamp_call_started(conn: Conn, ids: list[str]) -> None:
    await conn.execute(
        "UPDATE jobs SET call_started_at = now()"
        " WHERE id = ANY(%s::uuid[]) AND call_started_at IS NULL",
        (id_array(ids),),
    )


# ---- the results service ---------------------------------------------------------------------

# Each batch writes its jobs with one statement, the rows passed as one JSON parameter
# (`json_to_recordset`); each row is guarded by the status it had under the batch's lock.
_APPLY_RESULTS = """
UPDATE jobs AS j
SET status = v.status, failed_attempts = v.failed_attempts, next_attempt_at = v.next_attempt_at,
    queued = v.queued, check_only = v.check_only, force_required = v.force_required,
    published_at = v.published_at, provider_ids = v.provider_ids, last_error = v.last_error,
    updated_at = now()
FROM json_to_recordset(%s::json) AS v(
    id uuid, before text, status text, failed_attempts int, next_attempt_at timestamptz,
    queued boolean, check_only boolean, force_required boolean, published_at timestamptz,
    provider_ids jsonb, last_error jsonb)
WHERE j.id = v.id AND j.status = v.before
"""


async def lock(conn: Conn, ids: list[str]) -> dict[str, Row]:
    """Lock jobs in id order (concurrent batches then never deadlock)."""
    if not ids:
        return {}
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (id_array(ids),),
    )
    return {str(r["id"]): r for r in await cur.fetchall()}


async def apply_results(conn: Conn, values: list[dict[str, Any]]) -> int:
    """Write the moved jobs (`values`: id, the status before, the new columns); answers how
    many rows still had their status from before."""
    cur = await conn.execute(_APPLY_RESULTS, (json_rows(values),))
    return cur.rowcount
