"""The publisher in-process against the real stack: claims, results, dead letters, secrets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from herald.services.publisher.claims import ClaimStore
from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.domain.requests import PublishRequest
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.names import DLQ
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import instant_or_none, iso
from herald.shared.platforms.contract import AttemptContext
from herald.shared.stores import outbox
from tests.conftest import Namespace, eventually
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.integration.publisher_harness import WORKER, Harness, Logs, Spy, running
from tests.integration.publisher_support import (
    TOKEN,
    TopicReader,
    dispatch,
    sandbox_connection,
    schedule,
)

pytestmark = pytest.mark.integration


async def test_requests_for_sandbox_jobs_produce_results(harness: Harness) -> None:
    rt = harness.rt
    connections = [await sandbox_connection(rt) for _ in range(3)]
    jobs = [j for _ in range(5) for j in await schedule(rt, connections)]
    requests = await dispatch(rt, jobs)
    harness.send(requests)

    results = await harness.results_for(len(jobs))
    assert len(results) == len(jobs) and {r["job_id"] for r in results} == set(jobs)
    posts = {str(p["job_id"]): p for p in await harness.posts()}
    assert set(posts) == set(jobs)
    by_job = {r["job_id"]: r for r in results}
    for req in requests:
        r = by_job[req["job_id"]]
        assert r["outcome"] == "published" and r["attempt"] == 1
        assert r["worker"] == WORKER and r["trace_id"] == req["trace_id"]
        assert r["connection_id"] == req["connection_id"] and r["tenant_id"] == req["tenant_id"]
        assert r["provider_ids"]["sandbox_post_id"] == str(posts[r["job_id"]]["id"])
        assert instant_or_none(r["published_at"]) == posts[r["job_id"]]["published_at"]
        assert instant_or_none(r["started_at"]) <= instant_or_none(r["finished_at"])  # type: ignore[operator]
    rows = await rt.db.fetch(
        "SELECT j.call_started_at, c.worker, c.result FROM jobs j"
        " JOIN publish_claims c ON c.job_id = j.id AND c.attempt = 1 WHERE j.id = ANY(%s::uuid[])",
        (jobs,),
    )
    assert len(rows) == len(jobs)
    assert all(r["call_started_at"] is not None and r["worker"] == WORKER for r in rows)
    assert sorted(r["result"]["job_id"] for r in rows) == sorted(jobs)
    await harness.all_committed(len(jobs))
    assert_no_token(harness)


async def test_a_redelivered_request_reemits_the_same_result(harness: Harness) -> None:
    rt = harness.rt
    connection = await sandbox_connection(rt)
    [job] = await schedule(rt, [connection])
    [request] = await dispatch(rt, [job])
    harness.send([request])
    [first] = await harness.results_for(1)

    harness.send([request, request])  # redelivered twice (e.g. after a crash before commit)
    results = await harness.results_for(3)

    assert results == [first, first, first]  # unchanged, byte for byte the same fields
    assert len(harness.spy.calls) == 1 and len(await harness.posts()) == 1
    assert any("re-emitted" in line for line in harness.logs.lines)


async def test_a_job_with_an_earlier_success_makes_no_platform_call(harness: Harness) -> None:
    rt = harness.rt
    connection = await sandbox_connection(rt)
    [job] = await schedule(rt, [connection])
    await dispatch(rt, [job])
    await rt.db.execute(
        "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome,"
        " provider_ids) VALUES (%s, 1, 'elsewhere', now(), now(), 'published', %s)",
        (job, '{"sandbox_post_id": "42"}'),
    )
    [request] = await dispatch(rt, [job])  # attempt 2 (say, a retry after a lost answer)
    assert request["attempt"] == 2
    harness.send([request])

    [result] = await harness.results_for(1)
    assert result["outcome"] == "published" and result["attempt"] == 2
    assert result["provider_ids"] == {"sandbox_post_id": "42"}
    assert result["published_at"] is not None
    assert harness.spy.calls == [] and await harness.posts() == []


async def test_a_cancelled_job_is_skipped(harness: Harness) -> None:
    rt = harness.rt
    connection = await sandbox_connection(rt)
    cancelled, kept = await schedule(rt, [connection, await sandbox_connection(rt)])
    requests = await dispatch(rt, [cancelled, kept])
    await rt.db.execute(
        "UPDATE jobs SET status = 'CANCELLED', next_attempt_at = NULL WHERE id = %s",
        (cancelled,),
    )
    harness.send(requests)

    await harness.results_for(1)
    await harness.all_committed(2)  # both handled
    results = await harness.results.poll()
    assert [r["job_id"] for r in results] == [kept]
    assert [c[0] for c in harness.spy.calls] == [kept]
    job = await rt.db.fetchone("SELECT call_started_at FROM jobs WHERE id = %s", (cancelled,))
    assert job is not None and job["call_started_at"] is None
    assert any("cancelled job skipped" in line for line in harness.logs.lines)


async def test_cancel_after_dispatch_wins_over_a_late_request(harness: Harness) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    [request] = await dispatch(rt, [job])
    await rt.jobs().cancel(ADMIN, job)  # allowed: no call has started
    harness.send([request])
    await harness.all_committed(1)
    assert await harness.results.poll() == [] and harness.spy.calls == []


async def test_a_request_sent_ahead_is_claimed_at_once_and_called_at_its_due_instant(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dispatcher sends a job up to DISPATCH_LEAD_SECONDS before it is due, so that the
    # claim is taken ahead; the platform is called when the job is due, never before. (A
    # lead of seconds here: with a real lead of 0.1 s, a slow moment of a busy machine between
    # the send and the claim made the claim late and the test fail.)
    monkeypatch.setattr("herald.services.publisher.flow.DISPATCH_LEAD_SECONDS", 5.0)
    rt = harness.rt
    first, job = await schedule(rt, [await sandbox_connection(rt), await sandbox_connection(rt)])
    harness.send(await dispatch(rt, [first]))  # once answered, the consumer is in its group
    await harness.results_for(1)
    [request] = await dispatch(rt, [job])
    due = time.time() + 2.0
    request["due_at"] = iso(datetime.fromtimestamp(due, UTC))
    called: list[float] = []

    async def note_the_call(request: PublishRequest, ctx: AttemptContext) -> None:
        called.append(time.time())

    harness.spy.before = note_the_call
    harness.send([request])
    [_, result] = await harness.results_for(2)
    assert result["job_id"] == job and result["outcome"] == "published" and len(called) == 1
    assert called[0] >= due
    row = await rt.db.fetchone("SELECT call_started_at FROM jobs WHERE id = %s", (job,))
    assert row is not None and row["call_started_at"].timestamp() < due  # claimed ahead


async def test_a_request_due_far_ahead_waits_no_longer_than_the_lead(harness: Harness) -> None:
    # A clock far off, or a forged record: a due instant an hour away must not hold the job
    # (and a slot of the consumer) for an hour.
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    [request] = await dispatch(rt, [job])
    request["due_at"] = iso(datetime.now(UTC) + timedelta(hours=1))
    harness.send([request])
    [result] = await harness.results_for(1)
    assert result["job_id"] == job and result["outcome"] == "published"


async def test_a_past_deadline_request_answers_missed_without_a_call(harness: Harness) -> None:
    rt = harness.rt
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    await rt.db.execute(
        "UPDATE jobs SET publish_deadline = now() - interval '1 minute' WHERE id = %s", (job,)
    )
    [request] = await dispatch(rt, [job])
    harness.send([request])
    [result] = await harness.results_for(1)
    assert result["outcome"] == "missed" and "deadline" in result["error_message"]
    assert harness.spy.calls == [] and await harness.posts() == []


async def test_a_claim_taken_over_past_the_deadline_is_read_not_called_missed(
    harness: Harness,
) -> None:
    # A worker claimed three jobs, posted the first (one call, no container) and died; their
    # deadline passed before its lease ran out. Answered `missed` without a look, the first
    # would be "not posted" while live (and a redrive would post it twice).
    rt = harness.rt
    posted, unseen, boxed = await schedule(rt, [await sandbox_connection(rt) for _ in range(3)])
    requests = {r["job_id"]: r for r in await dispatch(rt, [posted, unseen, boxed])}
    await rt.db.execute(
        "UPDATE jobs SET publish_deadline = now() - interval '1 minute' WHERE id = ANY(%s)",
        ([posted, unseen, boxed],),
    )
    for job in (posted, unseen, boxed):
        await rt.db.execute(
            "INSERT INTO publish_claims (job_id, attempt, worker, lease_until)"
            " VALUES (%s, 1, 'publisher-dead', now() - interval '1 second')",
            (job,),
        )
    await rt.db.execute(
        "INSERT INTO sandbox_posts (job_id, attempt, connection_id) VALUES (%s, 1, %s)",
        (posted, requests[posted]["connection_id"]),
    )
    harness.send([requests[posted], requests[unseen]])
    results = {r["job_id"]: r for r in await harness.results_for(2)}
    assert results[posted]["outcome"] == "published"
    assert results[unseen]["outcome"] == "unconfirmed"  # the read cannot rule a post out
    # A platform that posts only from a stored container cannot have posted without one.
    harness.spy.posts_without_container = False
    harness.send([requests[boxed]])
    results = {r["job_id"]: r for r in await harness.results_for(3)}
    assert results[boxed]["outcome"] == "missed"
    assert sorted(harness.spy.calls) == sorted((j, 1, True) for j in (posted, unseen, boxed))
    assert [str(p["job_id"]) for p in await harness.posts()] == [posted]


async def test_connection_states_answer_without_a_call(harness: Harness) -> None:
    rt = harness.rt
    reauth, disabled = await sandbox_connection(rt), await sandbox_connection(rt)
    jobs = await schedule(rt, [reauth, disabled])
    await rt.db.execute("UPDATE connections SET status = 'needs_reauth' WHERE id = %s", (reauth,))
    await rt.db.execute("UPDATE connections SET status = 'disabled' WHERE id = %s", (disabled,))
    harness.send(await dispatch(rt, jobs))
    results = {r["connection_id"]: r["outcome"] for r in await harness.results_for(2)}
    assert results == {reauth: "auth_error", disabled: "permanent_error"}
    assert harness.spy.calls == []


async def test_invalid_messages_are_dead_lettered_and_the_consumer_goes_on(
    harness: Harness,
) -> None:
    rt = harness.rt
    harness.send_raw(b"not json at all")
    harness.send_raw(b'{"schema_version": "1.0", "job_id": "nope"}')
    [job] = await schedule(rt, [await sandbox_connection(rt)])
    [request] = await dispatch(rt, [job])
    unknown = dict(request, job_id="00000000-0000-4000-8000-000000000000")
    harness.send([unknown, request])

    [result] = await harness.results_for(1)
    assert result["job_id"] == job and result["outcome"] == "published"
    await harness.all_committed(4)
    rows = await rt.db.fetch("SELECT * FROM dead_letters ORDER BY created_at")
    assert [r["reason"] for r in rows] == ["invalid_message"] * 3
    assert {bytes(r["raw"]) for r in rows} >= {b"not json at all"}
    assert {str(r["job_id"]) for r in rows if r["job_id"]} == {unknown["job_id"]}
    assert all(r["source_topic"] == harness.request_topic for r in rows)

    # mirrored to publish.dlq through the outbox (relayed by the scheduler in production;
    # the relay lock is database-wide, so another run's relay may hold it for a moment)
    dlq = TopicReader(rt.settings.kafka_bootstrap, rt.names.topic(DLQ))
    try:

        async def three() -> bool:
            await outbox.relay_once(rt.db, harness.producer)
            return len(await dlq.poll()) >= 3

        await eventually(three)
        assert {v["reason"] for v in dlq.values} == {"invalid_message"}
    finally:
        dlq.close()


async def test_the_token_never_reaches_results_or_logs(harness: Harness) -> None:
    rt = harness.rt
    connections = [await sandbox_connection(rt), await sandbox_connection(rt)]
    [raising, echoing] = await schedule(rt, connections)
    harness.spy.raise_with_token = True
    harness.send(await dispatch(rt, [raising]))
    [first] = await harness.results_for(1)
    harness.spy.raise_with_token, harness.spy.echo_token = False, True
    harness.send(await dispatch(rt, [echoing]))
    results = await harness.results_for(2)

    assert first["outcome"] == "ambiguous"  # the sandbox may have posted before failing
    echoed = next(r for r in results if r["job_id"] == echoing)
    assert echoed["outcome"] == "retryable_error"
    assert echoed["provider_response"] == {"echo": {"access_token": "[redacted]"}}
    assert_no_token(harness)
    stored = await rt.db.fetch("SELECT result::text AS r FROM publish_claims")
    assert stored and all(TOKEN not in row["r"] for row in stored)


def assert_no_token(harness: Harness) -> None:
    assert harness.results.raw, "no results read"
    assert all(TOKEN.encode() not in raw for raw in harness.results.raw)
    assert harness.logs.lines and all(TOKEN not in line for line in harness.logs.lines)


async def test_check_only_reads_the_sandbox_and_never_posts(harness: Harness) -> None:
    rt = harness.rt
    posted, lost = await schedule(rt, [await sandbox_connection(rt), await sandbox_connection(rt)])
    requests = await dispatch(rt, [posted, lost])
    row = await rt.db.fetchone(  # an earlier ambiguous call did post this one
        "INSERT INTO sandbox_posts (job_id, attempt, connection_id)"
        " SELECT id, 1, connection_id FROM jobs WHERE id = %s RETURNING id, published_at",
        (posted,),
    )
    assert row is not None
    harness.send([dict(r, check_only=True) for r in requests])
    results = {r["job_id"]: r for r in await harness.results_for(2)}
    assert results[posted]["outcome"] == "published"
    assert results[posted]["provider_ids"] == {"sandbox_post_id": str(row["id"])}
    assert instant_or_none(results[posted]["published_at"]) == row["published_at"]
    assert results[lost]["outcome"] == "unconfirmed"
    assert sorted(harness.spy.calls) == sorted([(posted, 1, True), (lost, 1, True)])
    assert len(await harness.posts()) == 1


async def test_instagram_through_the_worker_stores_the_container_first(
    rt: Runtime, logs: Logs
) -> None:
    async with FakeGraph() as fake:
        instagram = InstagramPublisher(
            fake.base_url,
            throttle=Throttle(rt.redis, rt.names),
            poll_initial_seconds=0.005,
            poll_max_interval_seconds=0.02,
        )
        spy = Spy(SandboxPublisher(rt.db))
        async with running(rt, logs, {"sandbox": spy, "instagram": instagram}, spy) as h:
            created = await rt.connections().create(
                ADMIN,
                {
                    "platform": "instagram",
                    "name": "ig",
                    "access_token": DEFAULT_TOKEN,
                    "metadata": {"instagramBusinessAccountId": DEFAULT_ACCOUNT},
                },
            )
            jobs = []
            for caption in ("first", "second"):
                scheduled = await rt.jobs().schedule(
                    ADMIN,
                    {
                        "platform": "instagram",
                        "connection_id": created["id"],
                        "caption": caption,
                        "media_asset_ids": ["https://cdn.example.com/a/photo.jpg"],
                    },
                )
                jobs.append(str(scheduled.body["id"]))
            published, checked = jobs

            h.send(await dispatch(rt, [published]))
            [first] = await h.results_for(1)
            assert first["outcome"] == "published"
            row = await rt.db.fetchone("SELECT container_id FROM jobs WHERE id = %s", (published,))
            assert row is not None and row["container_id"] == first["provider_ids"]["container_id"]

            # An earlier attempt's media_publish went through but its answer was lost.
            container = await graph_post(
                fake, f"{DEFAULT_ACCOUNT}/media", image_url="https://cdn.example.com/a/photo.jpg"
            )
            await graph_post(fake, f"{DEFAULT_ACCOUNT}/media_publish", creation_id=container)
            await rt.db.execute(
                "UPDATE jobs SET container_id = %s WHERE id = %s", (container, checked)
            )
            publishes = len(fake.calls("media_publish"))
            [check] = await dispatch(rt, [checked])
            h.send([dict(check, check_only=True)])
            results = await h.results_for(2)
            confirmed = next(r for r in results if r["job_id"] == checked)
            assert confirmed["outcome"] == "published"
            assert confirmed["provider_ids"]["container_id"] == container
            assert len(fake.calls("media_publish")) == publishes  # a read, never a publish
            assert len(fake.posts[DEFAULT_ACCOUNT]) == 2
            assert all(DEFAULT_TOKEN.encode() not in raw for raw in h.results.raw)
            assert all(DEFAULT_TOKEN not in line for line in logs.lines)
        await instagram.close()


async def test_a_slow_permalink_read_never_undoes_a_publish(ns: Namespace, logs: Logs) -> None:
    rt = Runtime.build(ns.settings(container_poll_seconds=1, call_timeout_seconds=1))
    await rt.open()
    async with FakeGraph() as fake:
        instagram = InstagramPublisher(
            fake.base_url,
            throttle=Throttle(rt.redis, rt.names),
            poll_initial_seconds=0.005,
            poll_max_interval_seconds=0.02,
        )
        spy = Spy(SandboxPublisher(rt.db))
        async with running(rt, logs, {"sandbox": spy, "instagram": instagram}, spy) as h:
            [job] = await instagram_jobs(rt, ["slow permalink"])
            # Slow answers everywhere, then a permalink read that never comes: more than the
            # attempt's timeout (polls + 4 call timeouts = 5 s) once media_publish answered.
            for call in ("content_publishing_limit", "create_container", "media_publish"):
                fake.delay_next(call, 0.9)
            for _ in range(3):
                fake.hang_next("media_read", 30.0)
            h.send(await dispatch(rt, [job]))
            [result] = await h.results_for(1)
            assert result["outcome"] == "published", result
            assert result["provider_ids"]["media_id"] == fake.posts[DEFAULT_ACCOUNT][0].id
            assert len(fake.calls("media_publish")) == 1
        await instagram.close()
    await rt.close()


async def instagram_jobs(rt: Runtime, captions: list[str]) -> list[str]:
    created = await rt.connections().create(
        ADMIN,
        {
            "platform": "instagram",
            "name": "ig",
            "access_token": DEFAULT_TOKEN,
            "metadata": {"instagramBusinessAccountId": DEFAULT_ACCOUNT},
        },
    )
    jobs = []
    for caption in captions:
        body = {
            "platform": "instagram",
            "connection_id": created["id"],
            "caption": caption,
            "media_asset_ids": ["https://cdn.example.com/a/photo.jpg"],
        }
        jobs.append(str((await rt.jobs().schedule(ADMIN, body)).body["id"]))
    return jobs


async def graph_post(fake: FakeGraph, path: str, **params: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url}/{path}", data={**params, "access_token": DEFAULT_TOKEN}
        ) as resp,
    ):
        body = await resp.json()
    return str(body["id"])


async def test_a_one_letter_token_leaves_every_result_intact(harness: Harness) -> None:
    # Letters and digits that occur in job ids, platform names and outcomes.
    rt = harness.rt
    tokens = ["a", "x", "1", "s", "d"]
    connections = [await sandbox_connection(rt, token=t) for t in tokens]
    jobs = await schedule(rt, connections)
    requests = await dispatch(rt, jobs)
    harness.send(requests)

    results = await harness.results_for(len(jobs))
    by_job = {r["job_id"]: r for r in results}
    assert set(by_job) == set(jobs)
    for req in requests:
        r = by_job[req["job_id"]]
        assert r["platform"] == "sandbox" and r["outcome"] == "published", r
        assert r["connection_id"] == req["connection_id"] and r["tenant_id"] == req["tenant_id"]
        assert r["trace_id"] == req["trace_id"]
    posts = {str(p["job_id"]): str(p["id"]) for p in await harness.posts()}
    assert {r["job_id"]: r["provider_ids"]["sandbox_post_id"] for r in results} == posts


async def test_a_worker_that_lost_its_claim_stores_nothing_and_reports_nothing(
    harness: Harness,
) -> None:
    rt = harness.rt
    lost, lapsed = await schedule(rt, [await sandbox_connection(rt), await sandbox_connection(rt)])

    async def meanwhile(request: PublishRequest, ctx: AttemptContext) -> None:
        if request.job_id == lost:  # another worker took the claim over while we called
            await rt.db.execute(
                "UPDATE publish_claims SET worker = 'publisher-other', lease_until = now()"
                " + interval '1 minute' WHERE job_id = %s",
                (lost,),
            )
        else:  # our lease ran out, but nobody took the claim: it is still ours
            await rt.db.execute(
                "UPDATE publish_claims SET lease_until = now() - interval '1 minute'"
                " WHERE job_id = %s",
                (lapsed,),
            )
        await ctx.remember_container(f"container-of-{request.job_id}")

    harness.spy.before = meanwhile
    harness.send(await dispatch(rt, [lost, lapsed]))
    [result] = await harness.results_for(1)
    await harness.all_committed(2)
    assert result["job_id"] == lapsed and result["outcome"] == "published"
    await asyncio.sleep(0.5)  # nothing else comes
    assert len(await harness.results.poll()) == 1
    assert [str(p["job_id"]) for p in await harness.posts()] == [lapsed]
    rows = {
        str(r["id"]): r
        for r in await rt.db.fetch(
            "SELECT j.id, j.container_id, c.worker, c.result, c.lease_until > now() AS live"
            " FROM jobs j JOIN publish_claims c ON c.job_id = j.id"
        )
    }
    assert rows[lost]["container_id"] is None and rows[lost]["result"] is None
    assert rows[lost]["worker"] == "publisher-other"
    assert rows[lapsed]["container_id"] == f"container-of-{lapsed}"
    assert rows[lapsed]["worker"] == WORKER and rows[lapsed]["result"]["outcome"] == "published"


async def test_a_request_the_flow_fails_on_is_answered_and_the_rest_go_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug or a value nothing expected, outside the platform call: before, the exception
    # stopped the consumer, the service restarted and met the same request again, forever.
    rt = harness.rt
    connections = [await sandbox_connection(rt) for _ in range(3)]
    jobs = await schedule(rt, connections)
    poisoned = jobs[1]
    real_claim = ClaimStore.claim

    async def claim(self: ClaimStore, request: PublishRequest) -> Any:
        if request.job_id == poisoned:
            raise TypeError("a value nothing expected")
        return await real_claim(self, request)

    monkeypatch.setattr(ClaimStore, "claim", claim)
    harness.send(await dispatch(rt, jobs))
    results = {r["job_id"]: r for r in await harness.results_for(3)}
    await harness.all_committed(3)
    assert results[poisoned]["outcome"] == "ambiguous"
    assert "TypeError" in results[poisoned]["error_message"]
    assert {results[j]["outcome"] for j in jobs if j != poisoned} == {"published"}
    posted = sorted(str(p["job_id"]) for p in await harness.posts())
    assert posted == sorted(j for j in jobs if j != poisoned)
