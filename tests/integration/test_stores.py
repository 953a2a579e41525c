"""Redis and Postgres round trips through the project's own adapters, and migrations."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from herald.shared.infra.db.migrate import discover, migrate
from herald.shared.infra.db.pool import Database
from herald.shared.infra.delayed_queue import DelayedQueue, Due
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


async def test_a_connection_the_server_closed_is_replaced_before_it_is_used(
    rt: Runtime, ns: Namespace
) -> None:
    # A restart or a terminated backend closes pooled connections: the next checkout finds
    # out without a statement failing, and the caller gets a working connection.
    db = Database(ns.base.database_url, rt.db.schema, max_size=1)
    await db.open(wait=True)
    try:
        first = await db.fetchone("SELECT pg_backend_pid() AS pid")
        assert first is not None
        await rt.db.execute("SELECT pg_terminate_backend(%s)", (first["pid"],))
        await asyncio.sleep(0.2)
        second = await db.fetchone("SELECT pg_backend_pid() AS pid")
        assert second is not None and second["pid"] != first["pid"]
    finally:
        await db.close()


async def test_a_quiet_idle_connection_goes_out_without_a_round_trip(
    rt: Runtime, ns: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[object] = []
    real = AsyncConnectionPool.check_connection

    async def check_connection(conn: Any) -> None:
        checks.append(conn)
        await real(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", check_connection)
    db = Database(ns.base.database_url, rt.db.schema, max_size=1)
    await db.open(wait=True)
    try:
        first = await db.fetchone("SELECT pg_backend_pid() AS pid")
        await asyncio.sleep(1.5)  # idle, as between two lone jobs
        assert await db.fetchone("SELECT pg_backend_pid() AS pid") == first
        assert checks == []
    finally:
        await db.close()


async def test_a_job_names_a_connection_of_its_own_tenant(rt: Runtime) -> None:
    """One foreign key on (connection_id, tenant_id): a job row that pairs a connection
    with another tenant is refused by Postgres itself, whoever writes it."""
    sql = (
        "INSERT INTO jobs (id, tenant_id, post_id, platform, connection_id, media_asset_ids,"
        " scheduled_at, publish_deadline, status, next_attempt_at, request_hash, trace_id)"
        " VALUES (gen_random_uuid(), %s, gen_random_uuid(), 'sandbox', %s, ARRAY['m'],"
        " now(), now() + interval '1 day', 'SCHEDULED', now(), 'h', 't')"
    )
    await rt.db.execute("INSERT INTO tenants (id) VALUES ('mine'), ('theirs')")
    row = await rt.db.fetchone(
        "INSERT INTO connections (id, tenant_id, platform, name)"
        " VALUES (gen_random_uuid(), 'mine', 'sandbox', 'c') RETURNING id"
    )
    assert row is not None
    await rt.db.execute(sql, ("mine", row["id"]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await rt.db.execute(sql, ("theirs", row["id"]))


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


async def test_a_claim_ahead_takes_the_lead_s_jobs_once_the_first_is_half_a_lead_away(
    rt: Runtime,
) -> None:
    # The dispatcher claims up to a lead ahead (0.1 s here). Claiming each job as it came into
    # the lead made batches of one or two at a steady rate; waiting until the first is half
    # a lead away takes half a lead's worth at a time.
    queue = rt.queue
    now = time.time()
    await queue.add(
        {"a": Due("t", now + 0.07), "b": Due("u", now + 0.09), "c": Due("t", now + 0.2)}
    )
    assert await queue.claim(10, 30, now=now, ahead=0.1) == []  # the first is 0.07 s away
    claimed = await queue.claim(10, 30, now=now + 0.03, ahead=0.1)  # now 0.04 s away
    assert [c.job_id for c in claimed] == ["a", "b"]  # due by now + 0.1, one of each tenant
    assert abs(claimed[1].due - (now + 0.09)) < 1e-3
    assert await queue.next_due() == pytest.approx(now + 0.2, abs=1e-3)
    assert [c.job_id for c in await queue.claim(10, 30, now=now + 1)] == ["c"]  # overdue


async def test_redis_delayed_queue_claims_due_jobs_with_a_lease(rt: Runtime) -> None:
    queue = rt.queue
    now = time.time()
    await queue.add({"due-1": Due("t", now - 2), "due-2": Due("t", now - 1)})
    await queue.add({"later": Due("u", now + 3600)})
    claimed = await queue.claim(10, lease_seconds=0.5, now=now)
    assert [c.job_id for c in claimed] == ["due-1", "due-2"]
    assert abs(claimed[0].due - (now - 2)) < 1e-3
    assert await queue.claim(10, lease_seconds=0.5, now=now) == []  # claimed once
    assert await queue.held(["due-1", "due-2", "later", "nope"]) == {"due-1", "due-2", "later"}
    # An unacknowledged claim returns to the queue when its lease expires, at its due time.
    assert await queue.requeue_expired(now=now + 1) == 2
    assert await queue.next_due() == pytest.approx(now - 2, abs=1e-3)
    again = await queue.claim(10, lease_seconds=30, now=now + 1)
    assert sorted(c.job_id for c in again) == ["due-1", "due-2"]
    assert abs(again[0].due - (now - 2)) < 1e-3
    await queue.ack([c.job_id for c in again])
    assert await queue.requeue_expired(now=now + 100) == 0
    assert await queue.held(["due-1", "due-2"]) == set()
    assert await queue.depth() == 1
    assert await queue.next_due() == pytest.approx(now + 3600, abs=1e-3)


async def test_an_add_wakes_a_sleeping_dispatcher_unless_told_not_to(rt: Runtime) -> None:
    queue = rt.queue
    now = time.time()
    assert await queue.wait_for_wake(0.05) is False  # nothing added yet
    await queue.add({"quiet": Due("t", now + 60)}, wake=False)
    assert await queue.wait_for_wake(0.05) is False
    # More ids than one script call takes: the wake comes once, with the last of them.
    await queue.add({f"j{i}": Due("t", now + 60) for i in range(4500)})
    assert await queue.wait_for_wake(0.05) is True
    assert await queue.wait_for_wake(0.05) is False
    assert await queue.depth() == 4501


async def test_every_due_tenant_gets_into_a_batch_behind_another_tenants_backlog(
    rt: Runtime,
) -> None:
    """100,000 jobs of one tenant due first, three of another due a moment later: the next
    claim of 1,000 takes the other tenant's three with 997 of the first's."""
    queue = rt.queue
    now = time.time()
    for start in range(0, 100_000, 10_000):
        await queue.add(
            {f"a{i:06}": Due("big", now - 10) for i in range(start, start + 10_000)}, wake=False
        )
    await queue.add({f"b{i}": Due("small", now - 1) for i in range(3)})
    assert await queue.due_backlog(now) == 100_003
    claimed = [c.job_id for c in await queue.claim(1000, lease_seconds=30, now=now)]
    assert len(claimed) == 1000
    assert {"b0", "b1", "b2"} <= set(claimed)
    assert await queue.due_backlog(now) == 100_003  # 1,000 of them in flight
    assert await queue.depth() == 99_003


async def test_the_claim_shares_a_batch_round_robin(rt: Runtime) -> None:
    """Three tenants with 10 due jobs each and a batch of 6: two each. With more due
    tenants than a batch holds, those a claim did not reach come first in the next."""
    queue = rt.queue
    now = time.time()
    await queue.add({f"{t}{i}": Due(t, now - 5) for t in "xyz" for i in range(10)})
    first = [c.job_id[0] for c in await queue.claim(6, 30, now=now)]
    assert sorted(first) == ["x", "x", "y", "y", "z", "z"]
    await queue.add({f"w{i}": Due("w", now - 1) for i in range(10)})
    # Batches of 2 for four due tenants: w (never served) and x, then y and z, the two the
    # previous claim did not reach; only then x and w again.
    second = sorted(c.job_id[0] for c in await queue.claim(2, 30, now=now + 1))
    third = sorted(c.job_id[0] for c in await queue.claim(2, 30, now=now + 2))
    fourth = sorted(c.job_id[0] for c in await queue.claim(2, 30, now=now + 3))
    assert (second, third, fourth) == (["w", "x"], ["y", "z"], ["w", "x"])
    # A tenant with fewer due jobs than its share leaves the rest to the others.
    rest = [c.job_id[0] for c in await queue.claim(100, 30, now=now + 4)]
    assert len(rest) == 40 - 6 - 6


async def test_remove_and_reschedule_keep_each_tenants_place(rt: Runtime) -> None:
    queue = rt.queue
    now = time.time()
    await queue.add({"a": Due("t", now - 5), "b": Due("t", now + 60), "c": Due("u", now + 30)})
    assert await queue.next_due() == pytest.approx(now - 5, abs=1e-3)
    await queue.add({"a": Due("t", now + 90)})  # rescheduled later: t is due at b's time
    assert await queue.next_due() == pytest.approx(now + 30, abs=1e-3)
    assert await queue.claim(10, 30, now=now) == []
    await queue.remove(["c", "nope"])
    assert await queue.next_due() == pytest.approx(now + 60, abs=1e-3)
    await queue.remove(["a", "b"])
    assert await queue.next_due() is None
    assert await queue.depth() == 0 and await queue.held(["a", "b", "c"]) == set()


async def test_one_add_mixes_new_rescheduled_and_moved_ids(rt: Runtime) -> None:
    """New ids go in by tenant in one call each; one already queued is rescored on its
    own, and one queued under another tenant leaves that tenant's set."""
    queue = rt.queue
    now = time.time()
    await queue.add({"kept": Due("t", now - 9), "moved": Due("t", now - 8)})
    await queue.add(
        {
            "kept": Due("t", now - 1),  # rescheduled later: t's place follows it
            "moved": Due("u", now - 7),
            **{f"t{i}": Due("t", now - 3) for i in range(3)},
            **{f"u{i}": Due("u", now - 2) for i in range(2)},
        }
    )
    assert await queue.depth() == 7
    assert await queue.next_due() == pytest.approx(now - 7, abs=1e-3)  # u's "moved"
    claimed = await queue.claim(100, 30, now=now)
    assert [c.job_id for c in claimed if c.job_id.startswith(("t", "k"))] == [
        "t0", "t1", "t2", "kept"
    ]  # fmt: skip
    assert [c.job_id for c in claimed if c.job_id.startswith(("u", "m"))] == ["moved", "u0", "u1"]
    assert await queue.depth() == 0


async def test_redis_prefixes_isolate_runs(rt: Runtime) -> None:
    other = DelayedQueue(rt.redis, Names("", rt.names.redis_prefix + "other:"))
    await rt.queue.add({"mine": Due("t", time.time() - 1)})
    assert await other.claim(10, 1.0) == []
    assert [c.job_id for c in await rt.queue.claim(10, 1.0)] == ["mine"]
