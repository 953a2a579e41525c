"""Migration 0005 (decision 0011): dispatching a job and stamping its call leave the job's
indexes alone (heap-only updates), next_attempt_at is set exactly while a job is open, and
callers still see it only while the job waits."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.status import status_event
from herald.shared.stores import jobs as job_store
from herald.shared.stores.jobs import COLUMNS as JOB_COLUMNS
from tests.conftest import Namespace
from tests.support.helpers import older_schema
from tests.support.results_pipeline import schedule_jobs

_XACT_UPDATES = """
SELECT pg_stat_get_xact_tuples_updated('jobs'::regclass) AS updated,
       pg_stat_get_xact_tuples_hot_updated('jobs'::regclass) AS hot
"""


async def test_the_mark_and_the_stamp_are_heap_only_updates(rt: Runtime) -> None:
    # A few jobs, so their new row versions fit the room the fill factor leaves on a page.
    ids = await schedule_jobs(rt, 5)
    async with rt.db.transaction() as conn:
        assert (
            len(
                await job_store.mark_dispatched(
                    conn, ids, due_by=time.time(), lease=30.0, stuck=300.0
                )
            )
            == 5
        )
        cur = await conn.execute(_XACT_UPDATES)
        assert await cur.fetchone() == {"updated": 5, "hot": 5}  # counted in this transaction
    async with rt.db.transaction() as conn:
        await job_store.stamp_call_started(conn, ids)
        cur = await conn.execute(_XACT_UPDATES)
        assert await cur.fetchone() == {"updated": 5, "hot": 5}


async def test_an_in_progress_job_keeps_its_due_instant_but_shows_none(rt: Runtime) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    jobs = rt.jobs()
    due = await rt.db.fetchone("SELECT next_attempt_at FROM jobs WHERE id = %s", (job_id,))
    assert due is not None and due["next_attempt_at"] is not None
    async with rt.db.transaction() as conn:
        await job_store.mark_dispatched(conn, [job_id], due_by=time.time(), lease=30.0, stuck=300.0)
    row = await rt.db.fetchone(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
    assert row is not None
    assert (row["status"], row["next_attempt_at"]) == ("IN_PROGRESS", due["next_attempt_at"])
    assert status_event(row, "IN_PROGRESS")[2]["next_attempt_at"] is None
    view = await jobs.get(ADMIN, job_id)
    assert view["status"] == "IN_PROGRESS" and view["next_attempt_at"] is None


async def test_a_closed_job_with_a_next_attempt_is_refused(rt: Runtime) -> None:
    [job_id] = await schedule_jobs(rt, 1)
    with pytest.raises(psycopg.errors.CheckViolation):
        await rt.db.execute("UPDATE jobs SET status = 'PUBLISHED' WHERE id = %s", (job_id,))
    with pytest.raises(psycopg.errors.CheckViolation):
        await rt.db.execute("UPDATE jobs SET next_attempt_at = NULL WHERE id = %s", (job_id,))


_OLD_JOB = """
INSERT INTO jobs (id, tenant_id, post_id, platform, connection_id, media_asset_ids,
    scheduled_at, publish_deadline, status, next_attempt_at, dispatched_at, request_hash, trace_id)
VALUES (%s, 't', %s, 'sandbox', %s, ARRAY['https://cdn.example.com/a.jpg'],
    now() - interval '1 hour', now() + interval '1 day', %s, %s, %s, 'h', 't')
"""


def test_migration_gives_open_jobs_a_due_instant_and_clears_closed_ones(
    ns: Namespace, tmp_path: Path
) -> None:
    schema = ns.db_schema + "_hot"
    url = ns.base.database_url
    connection = uuid.uuid4()
    # Rows as Herald wrote them before 0005: IN_PROGRESS without a next attempt, and a
    # published job that kept one.
    dispatched = "2026-11-29T10:00:00+00:00"
    jobs = {
        "waiting": ("SCHEDULED", "2026-11-29T12:00:00+00:00", None),
        "in_progress": ("IN_PROGRESS", None, dispatched),
        "published": ("PUBLISHED", "2026-11-29T09:00:00+00:00", dispatched),
    }
    ids = {name: str(uuid.uuid4()) for name in jobs}
    with older_schema(url, schema, tmp_path, last=4):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("INSERT INTO tenants (id) VALUES ('t')")
            conn.execute(
                "INSERT INTO connections (id, tenant_id, platform, name)"
                " VALUES (%s, 't', 'sandbox', 'c')",
                (connection,),
            )
            for name, (status, next_at, at) in jobs.items():
                conn.execute(_OLD_JOB, (ids[name], uuid.uuid4(), connection, status, next_at, at))
        assert 5 in [m.version for m in migrate(url, schema)]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            found = dict(
                conn.execute(
                    "SELECT id, to_char(next_attempt_at AT TIME ZONE 'UTC', 'HH24:MI') FROM jobs"
                ).fetchall()
            )
            indexes = {
                r[0]
                for r in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'jobs'",
                    (schema,),
                ).fetchall()
            }
    assert found == {ids["waiting"]: "12:00", ids["in_progress"]: "10:00", ids["published"]: None}
    assert "jobs_open" in indexes
    assert not {"jobs_waiting", "jobs_in_progress"} & indexes
