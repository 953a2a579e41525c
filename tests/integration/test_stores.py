"""Redis and Postgres round trips through the project's own adapters, and migrations."""

from __future__ import annotations

import time

import psycopg

from herald.shared.infra.db.migrate import discover, migrate
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.names import Names
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace


async def test_postgres_round_trip_through_the_pool(rt: Runtime) -> None:
    await rt.db.execute("INSERT INTO tenants (id) VALUES (%s)", ("acme",))
    row = await rt.db.fetchone("SELECT id, created_at FROM tenants WHERE id = %s", ("acme",))
    assert row is not None and row["id"] == "acme"
    async with rt.db.transaction() as conn:
        await conn.execute("INSERT INTO tenants (id) VALUES ('committed')")
        await conn.execute("SELECT 1")
    assert await rt.db.fetchone("SELECT 1 AS one FROM tenants WHERE id = 'committed'")
    # the schema is the run's own: nothing leaks into the default one
    assert rt.db.schema.startswith("t_")


async def test_transaction_rolls_back_on_error(rt: Runtime) -> None:
    try:
        async with rt.db.transaction() as conn:
            await conn.execute("INSERT INTO tenants (id) VALUES ('doomed')")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert await rt.db.fetchone("SELECT 1 FROM tenants WHERE id = 'doomed'") is None


def test_migrate_twice_is_a_no_op_the_second_time(ns: Namespace) -> None:
    schema = ns.db_schema + "_m"
    first = migrate(ns.base.database_url, schema)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert migrate(ns.base.database_url, schema) == []
    with psycopg.connect(ns.base.database_url) as conn:
        versions = [
            r[0]
            for r in conn.execute(
                f'SELECT version FROM "{schema}".schema_migrations ORDER BY version'
            )
        ]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    assert versions == [m.version for m in discover()]
    assert {"jobs", "attempts", "dead_letters", "connections", "api_keys", "outbox"} <= tables


async def test_redis_delayed_queue_claims_due_jobs_with_a_lease(rt: Runtime) -> None:
    queue = rt.queue
    now = time.time()
    await queue.add({"due-1": now - 2, "due-2": now - 1, "later": now + 3600})
    claimed = await queue.claim(10, lease_seconds=0.5, now=now)
    assert [c.job_id for c in claimed] == ["due-1", "due-2"]
    assert abs(claimed[0].due - (now - 2)) < 1e-3
    assert await queue.claim(10, lease_seconds=0.5, now=now) == []  # claimed once
    assert await queue.held(["due-1", "due-2", "later", "nope"]) == {"due-1", "due-2", "later"}
    # An unacknowledged claim returns to the queue when its lease expires, at its due time.
    assert await queue.requeue_expired(now=now + 1) == 2
    again = await queue.claim(10, lease_seconds=30, now=now + 1)
    assert sorted(c.job_id for c in again) == ["due-1", "due-2"]
    assert abs(again[0].due - (now - 2)) < 1e-3
    await queue.ack([c.job_id for c in again])
    assert await queue.requeue_expired(now=now + 100) == 0
    assert await queue.held(["due-1", "due-2"]) == set()
    assert await queue.depth() == 1


async def test_redis_prefixes_isolate_runs(rt: Runtime) -> None:
    other = DelayedQueue(rt.redis, Names("", rt.names.redis_prefix + "other:"))
    await rt.queue.add({"mine": time.time() - 1})
    assert await other.claim(10, 1.0) == []
    assert [c.job_id for c in await rt.queue.claim(10, 1.0)] == ["mine"]
