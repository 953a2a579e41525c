"""The `publish_claims` table: a publisher's claim of (job, attempt) before any platform
call, its lease, and the attempt's result once it is known (every delivery of the request
then answers the same).

Holding a claim is ownership: the worker's name and no result yet. A lapsed lease alone is
not a loss: another worker takes a claim over only in its claim transaction, which locks the
claim row (`lock`) and rewrites `worker` (`upsert`); so a statement of the holder either
comes first (the lease is live again and the other worker waits) or finds another worker's
name and answers "lost".

Every statement that writes several claims locks them first in key order (job id, attempt),
as `lock` does: two statements that lock overlapping claims in different orders deadlock,
and Postgres notices only after `deadlock_timeout` (a second), then aborts one of them (a
lease renewal against a batch of results did, and those results waited the second).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from herald.shared.infra.db.pool import Database, Row, json_rows

Conn = psycopg.AsyncConnection[Row]
Key = tuple[str, int]  # (job id, attempt)


def rows(items: Iterable[tuple[str, int, dict[str, Any] | None]]) -> str:
    """(job id, attempt, document) rows for `json_to_recordset(...) AS v(j, a, r)`."""
    return json_rows([{"j": j, "a": a, "r": r} for j, a, r in items])


async def lock(conn: Conn, keys: str) -> Any:
    """Every claim of these jobs, locked (a cursor: the claim transaction is pipelined)."""
    return await conn.execute(
        "SELECT job_id::text AS job_id, attempt, worker, lease_until,"
        " lease_until < now() AS expired, result"
        " FROM publish_claims WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, attempt FOR UPDATE",
        (keys,),
    )


async def upsert(conn: Conn, worker: str, lease: float, claims: str) -> None:
    """Claim (insert, take over, or refresh our own) with a lease; `claims` are `rows` whose
    document is the result decided without a call (or null)."""
    await conn.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until, result)"
        " SELECT v.j, v.a, %s, now() + make_interval(secs => %s), v.r"
        " FROM json_to_recordset(%s::json) AS v(j uuid, a int, r jsonb)"
        " ON CONFLICT (job_id, attempt) DO UPDATE SET worker = EXCLUDED.worker,"
        " lease_until = EXCLUDED.lease_until, result = EXCLUDED.result",
        (worker, lease, claims),
    )


# The claims of these rows (`rows`) that this worker holds, with each row's document, locked
# in key order (see above).
_MINE = """mine AS MATERIALIZED (
    SELECT p.job_id, p.attempt, v.r
    FROM json_to_recordset(%(claims)s::json) AS v(j uuid, a int, r jsonb)
    JOIN publish_claims AS p ON p.job_id = v.j AND p.attempt = v.a
    WHERE p.worker = %(worker)s AND p.result IS NULL
    ORDER BY p.job_id, p.attempt FOR UPDATE OF p
)"""


# The claims this worker still holds, their leases extended; in the same statement, each
# one's new container (or new carousel items, which replace any container) stored on its
# job, clearing the "publish sent" stamp (a new container was never published), or, right
# before the irreversible call, that stamp set (on a job with a container: a platform
# without containers, like the sandbox, needs none).
_HOLD = f"""
WITH {_MINE},
held AS (
    UPDATE publish_claims AS p SET lease_until = now() + make_interval(secs => %(lease)s)
    FROM mine WHERE p.job_id = mine.job_id AND p.attempt = mine.attempt
    RETURNING p.job_id, p.attempt, mine.r ->> 'container_id' AS container_id,
              mine.r ->> 'children' AS children,
              coalesce((mine.r ->> 'publishing')::boolean, false) AS publishing
), stored AS (
    UPDATE jobs SET container_id = CASE WHEN held.children IS NOT NULL THEN NULL
                                        ELSE coalesce(held.container_id, jobs.container_id) END,
                    child_container_ids = coalesce(held.children, jobs.child_container_ids),
                    publish_sent_at = CASE WHEN held.publishing
                                           THEN coalesce(jobs.publish_sent_at, now()) END
    FROM held
    WHERE jobs.id = held.job_id
      AND (held.container_id IS NOT NULL OR held.children IS NOT NULL
           OR (held.publishing AND jobs.container_id IS NOT NULL))
)
SELECT job_id::text AS job_id, attempt FROM held
"""


async def hold(db: Database, worker: str, lease: float, claims: str) -> set[Key]:
    """The claims (`rows`, documents of `container_id`, `children`, `publishing`) this
    worker still holds, leases extended and their changes stored in the same statement."""
    params = {"lease": lease, "claims": claims, "worker": worker}
    return {(r["job_id"], r["attempt"]) for r in await db.fetch(_HOLD, params)}


async def renew(db: Database, worker: str, lease: float, keys: list[Key]) -> set[Key]:
    """Extend the leases of these claims; answers those this worker still holds."""
    return await hold(db, worker, lease, rows((j, a, None) for j, a in keys))


async def store_results(conn: Conn, worker: str, results: str) -> set[Key]:
    """Store each result (`rows`) in its claim, only while this worker holds it; answers the
    claims it was stored in."""
    cur = await conn.execute(
        f"WITH {_MINE} UPDATE publish_claims AS p SET result = mine.r FROM mine"
        " WHERE p.job_id = mine.job_id AND p.attempt = mine.attempt"
        " RETURNING p.job_id::text AS job_id, p.attempt",
        {"claims": results, "worker": worker},
    )
    return {(r["job_id"], r["attempt"]) for r in await cur.fetchall()}


async def stored(conn: Conn, keys: list[Key]) -> dict[Key, Any]:
    """The claims of these attempts that exist, each with its result (None: not answered)."""
    cur = await conn.execute(
        "SELECT job_id::text AS job_id, attempt, result FROM publish_claims"
        " WHERE job_id = ANY(%s::uuid[]) AND attempt = ANY(%s::int[])",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    wanted = set(keys)
    return {
        key: r["result"]
        for r in await cur.fetchall()
        if (key := (r["job_id"], r["attempt"])) in wanted
    }


async def insert_results(conn: Conn, worker: str, results: str) -> None:
    """Results for attempts that have no claim row at all (should not happen)."""
    await conn.execute(
        "INSERT INTO publish_claims (job_id, attempt, worker, lease_until, result)"
        " SELECT v.j, v.a, %s, now(), v.r"
        " FROM json_to_recordset(%s::json) AS v(j uuid, a int, r jsonb)"
        " ON CONFLICT (job_id, attempt) DO NOTHING",
        (worker, results),
    )
