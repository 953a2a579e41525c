"""The publish.schedule consumer: commands (schedule, cancel, reschedule, retry) applied;
bad ones dead-lettered; it goes on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from herald.services.scheduler.ingress import CommandIngress
from herald.services.scheduler.main import relay_outbox
from herald.services.scheduler.reconciler import Reconciler
from herald.shared.domain.tenancy import ADMIN
from herald.shared.errors import StoreUnavailable
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import DLQ, SCHEDULE
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs import batch
from herald.shared.messages import codec
from herald.shared.messages.client import HeraldClient
from herald.shared.messages.codec import now_utc
from herald.shared.stores import jobs as stored_jobs
from tests.conftest import Namespace, eventually
from tests.support.helpers import aread_topic, sandbox_connections

MEDIA = ["https://cdn.example.com/a.jpg"]


async def test_commands_are_applied_and_bad_ones_go_to_the_dlq(ns: Namespace, rt: Runtime) -> None:
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    (foreign,) = await sandbox_connections(rt, 1, tenant="other")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    later = now_utc() + timedelta(hours=1)
    good = client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="hello",
        scheduled_at=later,
    )
    client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="hello",
        scheduled_at=later,
        job_id=good,
    )  # a retried command
    reused = client.schedule(
        platform="sandbox",
        connection_id=conn,
        media_asset_ids=MEDIA,
        caption="other body",
        scheduled_at=later,
        job_id=good,
    )
    refused = client.schedule(
        platform="sandbox", connection_id=foreign, media_asset_ids=MEDIA, scheduled_at=later
    )
    cancelled = client.schedule(
        platform="sandbox", connection_id=conn, media_asset_ids=MEDIA, scheduled_at=later
    )
    client.cancel(cancelled)
    client.flush()
    topic = ns.topic_prefix + SCHEDULE
    Producer(ns.base.kafka_bootstrap).send_batch(
        [(topic, "x", b"{not json"), (topic, "y", orjson.dumps({"schema_version": "1.0"}))]
    )
    last = client.schedule(
        platform="sandbox", connection_id=conn, media_asset_ids=MEDIA, scheduled_at=later
    )
    client.flush()

    stop = asyncio.Event()
    ingress = CommandIngress(rt, rt.jobs())
    tasks = [
        asyncio.create_task(ingress.consumer().run(stop)),
        asyncio.create_task(relay_outbox(rt, stop)),
    ]
    try:

        async def applied() -> bool:
            found = await _statuses(rt, [good, cancelled, last])
            return len(found) == 3 and found[cancelled] == "CANCELLED"

        await eventually(applied, timeout=60)
        dlq = await aread_topic(
            ns.base.kafka_bootstrap, ns.topic_prefix + DLQ, expect=4, timeout=30
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert (await rt.jobs().get(ADMIN, good))["caption"] == "hello"
    assert (await rt.jobs().get(ADMIN, cancelled))["status"] == "CANCELLED"
    assert await rt.db.fetchone("SELECT 1 FROM jobs WHERE id = %s", (refused,)) is None
    assert reused == good
    assert {d["reason"] for d in dlq} == {"invalid_message"}
    by_job = {d["job_id"]: d for d in dlq}
    assert by_job[refused]["error"]["code"] == "validation_failed"
    assert "connection_id" in by_job[refused]["error"]["fields"]
    assert by_job[good]["error"]["code"] == "job_id_reused"
    raw = [d for d in dlq if d["job_id"] is None]
    assert len(raw) == 2 and all(d["raw_base64"] for d in raw)
    rows = await rt.db.fetch("SELECT reason, job_id FROM dead_letters")
    assert len(rows) == 4 and {r["reason"] for r in rows} == {"invalid_message"}


async def _exists(rt: Runtime, job_id: str) -> bool:
    return (
        await rt.db.fetchone("SELECT 1 FROM jobs WHERE id = %s", (uuid.UUID(job_id),)) is not None
    )


async def _statuses(rt: Runtime, job_ids: list[str]) -> dict[str, str]:
    """Each existing job's status. Commands are keyed by job id, so jobs' commands land on
    different partitions and apply in no set order between jobs: a test waits for each job
    it looks at, never for "the last one sent"."""
    rows = await rt.db.fetch(
        "SELECT id::text, status FROM jobs WHERE id = ANY(%s)", ([uuid.UUID(j) for j in job_ids],)
    )
    return {r["id"]: r["status"] for r in rows}


def _command(command: str, job_id: str, tenant: str, **fields: object) -> bytes:
    value = {
        "schema_version": "1.1",
        "command": command,
        "job_id": job_id,
        "tenant_id": tenant,
        "idempotency_key": f"{command}:{job_id}:{uuid.uuid4().hex}",
        "trace_id": uuid.uuid4().hex,
        **fields,
    }
    return orjson.dumps(value)


async def test_no_command_can_stop_the_others_even_with_redis_away(
    ns: Namespace, rt: Runtime
) -> None:
    # Every command below passes the topic schema; each used to raise out of the batch
    # (OverflowError on far dates) and end the scheduler, or to be lost with Redis away.
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    later = (now_utc() + timedelta(hours=1)).isoformat()
    ids = {name: str(uuid.uuid4()) for name in ("far", "year1", "good", "moved", "boom", "last")}
    body = {"platform": "sandbox", "connection_id": conn, "media_asset_ids": MEDIA}
    topic = ns.topic_prefix + SCHEDULE
    far = "9999-12-31T23:59:59Z"

    def cmd(name: str, command: str, **fields: object) -> tuple[str, str, bytes]:
        return topic, ids[name], _command(command, ids[name], "acme", **fields)

    Producer(ns.base.kafka_bootstrap).send_batch(
        [
            cmd("good", "schedule", **body),
            cmd("moved", "schedule", **body),
            cmd("boom", "schedule", **body),
            cmd("far", "schedule", **body, scheduled_at=far),
            cmd("year1", "schedule", **body, publish_deadline="0001-01-01T00:00:00+01:00"),
            cmd("moved", "reschedule", publish_deadline=far),
            cmd("boom", "reschedule", caption="boom"),
            cmd("last", "schedule", **body, scheduled_at=later),
        ]
    )
    away = Runtime.build(ns.settings(redis_url="redis://127.0.0.1:1/0"))
    await away.open()
    stop = asyncio.Event()
    jobs = away.jobs()
    real_reschedule = jobs.reschedule

    async def reschedule(principal: Any, job_id: str, change: Any) -> dict[str, Any]:
        if job_id == ids["boom"]:
            raise KeyError("a bug in one command's path")
        return await real_reschedule(principal, job_id, change)

    jobs.reschedule = reschedule  # type: ignore[method-assign]
    task = asyncio.create_task(CommandIngress(away, jobs).consumer().run(stop))
    try:
        kept = [ids[name] for name in ("good", "moved", "boom", "last")]

        async def all_kept() -> bool:
            return len(await _statuses(rt, kept)) == len(kept)

        await eventually(all_kept, timeout=60)

        async def four_dead_letters() -> bool:
            return len(await rt.db.fetch("SELECT 1 FROM dead_letters")) >= 4

        await eventually(four_dead_letters, timeout=30)
        assert not task.done(), "the ingress stopped"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await away.close()

    letters = {str(r["job_id"]): r for r in await rt.db.fetch("SELECT * FROM dead_letters")}
    assert set(letters) == {ids["far"], ids["year1"], ids["moved"], ids["boom"]}
    assert all(r["reason"] == "invalid_message" for r in letters.values())
    assert "scheduled_at" in letters[ids["far"]]["last_error"]["fields"]
    assert "publish_deadline" in letters[ids["year1"]]["last_error"]["fields"]
    assert "publish_deadline" in letters[ids["moved"]]["last_error"]["fields"]
    assert "KeyError" in letters[ids["boom"]]["last_error"]["message"]
    for name in ("good", "moved", "boom", "last"):
        assert await _exists(rt, ids[name]), name
    for name in ("far", "year1"):
        assert not await _exists(rt, ids[name]), name
    # Redis was away: Postgres has them, and the reconciler queues the due ones; `last`, due
    # in an hour, waits in Postgres until it is due within the reconciler's look-ahead.
    assert await rt.queue.held(list(ids.values())) == set()
    await Reconciler(rt).reconcile_once()
    assert await rt.queue.held(list(ids.values())) == {ids[n] for n in ("good", "moved", "boom")}


class _Record:
    """What the ingress reads of a Kafka record: its value."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


async def _take(rt: Runtime, count: int) -> tuple[list[str], list[_Record], Callable[..., _Record]]:
    """A take of `count` schedule commands for new jobs on one sandbox connection, due in an
    hour; and the function that made each (a job id, and fields to change)."""
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    later = (now_utc() + timedelta(hours=1)).isoformat()
    body = {"platform": "sandbox", "connection_id": conn, "media_asset_ids": MEDIA}

    def schedule(job_id: str, **fields: object) -> _Record:
        value = body | {"scheduled_at": later} | fields
        return _Record(_command("schedule", job_id, "acme", **value))

    ids = [str(uuid.uuid4()) for _ in range(count)]
    return ids, [schedule(j) for j in ids], schedule


async def test_a_schedule_command_that_raises_is_found_by_halves_and_the_rest_are_written(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A take's schedule commands are one transaction; one command that raises (a bug, not a
    # refusal) fails it. The ingress finds it by halves, writes the others and dead-letters
    # that one: 13 transactions for 64 commands, where one by one took 65.
    ids, take, _ = await _take(rt, 64)
    poison = ids[37]
    writes: list[int] = []
    real = batch.write

    async def write(jobs: Any, checked: batch.Checked) -> Any:
        writes.append(len(checked.items))
        if any(item.job_id == poison for item in checked.items):
            raise KeyError("a bug met by one command")
        return await real(jobs, checked)

    monkeypatch.setattr(batch, "write", write)
    await CommandIngress(rt, rt.jobs()).handle_batch(take)  # type: ignore[arg-type]

    assert set(await _statuses(rt, ids)) == set(ids) - {poison}
    [letter] = await rt.db.fetch("SELECT * FROM dead_letters")
    assert str(letter["job_id"]) == poison and letter["reason"] == "invalid_message"
    assert "KeyError" in letter["last_error"]["message"]
    assert await rt.queue.held(ids) == set(ids) - {poison}
    assert len(writes) <= 13, writes


async def test_a_run_is_checked_while_the_one_before_is_written_and_a_cancel_waits_for_both(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2,500 schedule commands, then cancels of the first job and the last: three
    # transactions (1,000, 1,000, 500), each run checked before the write ahead of it ends,
    # and the cancels applied after the writes of the jobs they name.
    ids, take, _ = await _take(rt, 2500)
    checks: list[int] = []
    written: list[int] = []
    second_checked = asyncio.Event()
    started: list[int] = []
    overlapped: list[bool] = []
    real_check, real_write = batch.check, batch.write

    def check(jobs: Any, items: list[Any]) -> batch.Checked:
        checks.append(len(items))
        if len(checks) == 2:
            second_checked.set()
        return real_check(jobs, items)

    async def write(jobs: Any, checked: batch.Checked) -> Any:
        if not started:  # the first write ends only once run 2 is checked
            started.append(len(checked.items))
            try:
                overlapped.append(await asyncio.wait_for(second_checked.wait(), 10))
            except TimeoutError:
                overlapped.append(False)
        outcomes = await real_write(jobs, checked)
        written.append(len(checked.items))
        return outcomes

    monkeypatch.setattr(batch, "check", check)
    monkeypatch.setattr(batch, "write", write)
    take += [_Record(_command("cancel", j, "acme")) for j in (ids[0], ids[-1])]
    await CommandIngress(rt, rt.jobs()).handle_batch(take)  # type: ignore[arg-type]

    assert overlapped == [True]
    assert checks == [1000, 1000, 500] and sorted(written) == [500, 1000, 1000]
    statuses = await _statuses(rt, ids)
    assert len(statuses) == len(ids)
    cancelled = {j for j, status in statuses.items() if status == "CANCELLED"}
    assert cancelled == {ids[0], ids[-1]}
    assert await rt.queue.held(ids) == set(ids[1:-1])


async def test_a_take_whose_second_write_meets_an_outage_raises_and_is_written_once_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Postgres gone during the second of three writes: the take raises the outage (the
    # consumer retries it whole), no third write starts, and the retry writes every job
    # once: those the first run wrote are found by their job ids.
    ids, take, _ = await _take(rt, 2500)
    real_write, writes = batch.write, []

    async def write(jobs: Any, checked: batch.Checked) -> Any:
        writes.append(len(checked.items))
        if len(writes) == 2:
            raise StoreUnavailable("postgres", "gone")
        return await real_write(jobs, checked)

    ingress = CommandIngress(rt, rt.jobs())
    monkeypatch.setattr(batch, "write", write)
    with pytest.raises(StoreUnavailable):
        await ingress.handle_batch(take)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    assert writes == [1000, 1000] and len(await _statuses(rt, ids)) <= 1000
    monkeypatch.setattr(batch, "write", real_write)
    await ingress.handle_batch(take)  # type: ignore[arg-type]
    assert len(await _statuses(rt, ids)) == len(ids)
    assert await rt.db.fetch("SELECT * FROM dead_letters") == []
    assert await rt.queue.held(ids) == set(ids)


async def test_a_command_repeated_in_a_later_run_of_its_take_is_a_no_op(rt: Runtime) -> None:
    # Runs of one take are written two at a time, so a command sent twice (a producer's
    # retry) can be in two transactions at once: the later one meets the earlier's row as
    # a duplicate key, and is written again, finding it written. The repeat is a no-op,
    # the same job id with another body is refused, and every other job is written.
    ids, take, schedule = await _take(rt, 2500)
    twice, reused = ids[999], ids[998]  # the last of the first run, again in the second
    take.insert(1001, take[999])
    take.insert(1002, schedule(reused, caption="another"))
    await CommandIngress(rt, rt.jobs()).handle_batch(take)  # type: ignore[arg-type]

    statuses = await _statuses(rt, ids)
    assert len(statuses) == len(ids) and set(statuses.values()) == {"SCHEDULED"}
    letters = await rt.db.fetch("SELECT job_id::text AS job_id, last_error FROM dead_letters")
    assert [(r["job_id"], r["last_error"]["code"]) for r in letters] == [
        (reused, "job_id_reused")
    ], letters
    rows = await rt.db.fetch("SELECT caption FROM jobs WHERE id = %s", (uuid.UUID(reused),))
    assert [r["caption"] for r in rows] == [""]
    assert twice in await rt.queue.held(ids)


async def test_a_command_written_by_two_takes_at_once_is_written_once_and_refused_never(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two scheduler copies (or a take and its redelivery) write the same lone command at
    # once: both read its job id as new, and the second insert meets the first's row once
    # that commits. That is the command again, a no-op: no dead letter.
    ids, take, _ = await _take(rt, 1)
    insert = stored_jobs.insert_many
    second_read = asyncio.Event()
    calls = 0

    async def in_step(conn: Any, rows: list[Any], **kw: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first commits only once the second has read the id as new
            await insert(conn, rows, **kw)
            await second_read.wait()
        else:
            second_read.set()
            await insert(conn, rows, **kw)

    monkeypatch.setattr(stored_jobs, "insert_many", in_step)
    ingress = CommandIngress(rt, rt.jobs())
    await asyncio.gather(ingress.handle_batch(take), ingress.handle_batch(take))  # type: ignore[arg-type]

    assert calls == 2  # the second did try to insert it
    assert await _statuses(rt, ids) == {ids[0]: "SCHEDULED"}
    assert await rt.db.fetch("SELECT * FROM dead_letters") == []


async def test_reschedule_and_retry_commands_are_applied_through_the_ingress(
    ns: Namespace, rt: Runtime
) -> None:
    (conn,) = await sandbox_connections(rt, 1, tenant="acme")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    later = now_utc() + timedelta(hours=1)
    moved, exhausted, unconfirmed = (
        client.schedule(
            platform="sandbox",
            connection_id=conn,
            media_asset_ids=MEDIA,
            caption="before",
            scheduled_at=later,
        )
        for _ in range(3)
    )
    client.flush()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(CommandIngress(rt, rt.jobs()).consumer().run(stop)),
        asyncio.create_task(relay_outbox(rt, stop)),
    ]
    try:

        async def all_there() -> bool:
            return len(await _statuses(rt, [moved, exhausted, unconfirmed])) == 3

        await eventually(all_there, timeout=60)
        # Two jobs dead-lettered as results leaves them: budget spent; outcome unknown.
        await rt.db.execute(
            "UPDATE jobs SET status = 'DEAD_LETTERED', next_attempt_at = NULL, queued = false,"
            " failed_attempts = 5, force_required = (id = %s) WHERE id = ANY(%s)",
            (unconfirmed, [exhausted, unconfirmed]),
        )
        await rt.queue.remove([exhausted, unconfirmed])
        new_time = now_utc() + timedelta(hours=2)
        client.reschedule(moved, scheduled_at=new_time, caption="after")
        client.retry(exhausted)
        client.retry(unconfirmed)  # refused: the post may be live, only `force` re-checks it
        client.flush()
        # The same command at the previous schema major, with force: applied.
        forced = {
            "schema_version": f"{codec.CURRENT_MAJOR - 1}.4",
            "command": "retry",
            "job_id": unconfirmed,
            "tenant_id": "acme",
            "idempotency_key": f"retry:{unconfirmed}:forced",
            "trace_id": codec.new_trace_id(),
            "force": True,
        }
        topic = ns.topic_prefix + SCHEDULE
        Producer(ns.base.kafka_bootstrap).send_batch([(topic, unconfirmed, orjson.dumps(forced))])

        async def applied() -> bool:
            found = {j: (await rt.jobs().get(ADMIN, j))["status"] for j in (moved, unconfirmed)}
            return found == {moved: "SCHEDULED", unconfirmed: "RETRY_SCHEDULED"} and (
                (await rt.jobs().get(ADMIN, moved))["caption"] == "after"
            )

        await eventually(applied, timeout=60)
        dlq = await aread_topic(ns.base.kafka_bootstrap, ns.topic_prefix + DLQ, expect=1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    job = await rt.jobs().get(ADMIN, moved)
    assert job["scheduled_at"] == codec.iso(new_time) and job["caption"] == "after"
    for retried in (exhausted, unconfirmed):
        job = await rt.jobs().get(ADMIN, retried)
        assert job["status"] == "RETRY_SCHEDULED", job
        row = await rt.db.fetchone("SELECT failed_attempts FROM jobs WHERE id = %s", (retried,))
        assert row is not None and row["failed_attempts"] == 0  # a fresh budget
    assert await rt.queue.held([exhausted, unconfirmed]) == {exhausted, unconfirmed}
    assert [(d["job_id"], d["error"]["code"]) for d in dlq] == [(unconfirmed, "force_required")]


async def test_a_backlog_larger_than_a_take_is_applied_whole_and_each_job_in_order(
    ns: Namespace, rt: Runtime
) -> None:
    """Commands waiting when the ingress starts come in takes of up to 1,000, applied in
    transactions of up to 100: every job is written, and a job's later command (its
    partition's order) lands after its schedule though other jobs' commands lie between."""
    conns = await sandbox_connections(rt, 4, tenant="acme")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    later = now_utc() + timedelta(hours=1)
    ids = [
        client.schedule(
            platform="sandbox",
            connection_id=conns[i % 4],
            media_asset_ids=MEDIA,
            caption=f"backlog {i}",
            scheduled_at=later,
        )
        for i in range(2500)
    ]
    cancelled, moved = ids[0:2500:100], ids[50:2500:100]  # 25 each, from the whole stream
    for job_id in cancelled:
        client.cancel(job_id)
    for job_id in moved:
        client.reschedule(job_id, caption="after")
    client.flush()
    stop = asyncio.Event()
    task = asyncio.create_task(CommandIngress(rt, rt.jobs()).consumer().run(stop))
    try:

        async def applied() -> bool:
            found = await _statuses(rt, ids)
            return len(found) == len(ids) and all(found[j] == "CANCELLED" for j in cancelled)

        await eventually(applied, timeout=120)

        async def moved_all() -> bool:
            rows = await rt.db.fetch(
                "SELECT count(*) AS n FROM jobs WHERE id = ANY(%s) AND caption = 'after'",
                ([uuid.UUID(j) for j in moved],),
            )
            return bool(rows[0]["n"] == len(moved))

        await eventually(moved_all, timeout=60)
    finally:
        stop.set()
        await task

    kept = set(ids) - set(cancelled)
    assert await rt.queue.held(ids) == kept
    assert await rt.db.fetch("SELECT 1 FROM dead_letters") == []
