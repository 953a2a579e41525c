"""The sandbox platform against real Postgres: it never deduplicates, and its status lookup
is the only way to learn that an earlier call went through."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.domain.outcomes import Outcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.contract import AttemptContext
from tests.conftest import eventually

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
CONNECTION = Connection(str(uuid.uuid4()), "default", "sandbox", "s", "active")


def request(job_id: str, attempt: int = 1) -> PublishRequest:
    return PublishRequest(
        job_id=job_id,
        tenant_id="default",
        post_id=job_id,
        platform="sandbox",
        connection_id=CONNECTION.id,
        attempt=attempt,
        media_asset_ids=["https://cdn.example.com/a.jpg"],
        caption="hi",
        media_type=None,
        scheduled_at=NOW,
        due_at=NOW,
        publish_deadline=NOW + timedelta(days=1),
        trace_id="t",
    )


def context(*, ambiguous: bool = False, claimed_before: bool = False) -> AttemptContext:
    async def nothing(*_: Any) -> None:
        return None

    return AttemptContext(
        worker="publisher-test-1",
        stored_container_id=None,
        previous_outcome_ambiguous=ambiguous,
        remember_container=nothing,
        confirm_claim=nothing,
        poll_seconds=1.0,
        call_timeout_seconds=1.0,
        claimed_before=claimed_before,
    )


async def posts(rt: Runtime, job_id: str) -> list[str]:
    rows = await rt.db.fetch(
        "SELECT id FROM sandbox_posts WHERE job_id = %s ORDER BY id", (job_id,)
    )
    return [str(r["id"]) for r in rows]


async def test_every_accepted_call_is_a_post(rt: Runtime) -> None:
    sandbox = SandboxPublisher(rt.db)
    job = str(uuid.uuid4())
    first = await sandbox.publish(request(job), CONNECTION, context())
    again = await sandbox.publish(request(job, 2), CONNECTION, context())
    # The platform keeps no idempotency: a second call is a second post, visible to anyone.
    assert [first.outcome, again.outcome] == [Outcome.PUBLISHED, Outcome.PUBLISHED]
    ids = [first.provider_ids["sandbox_post_id"], again.provider_ids["sandbox_post_id"]]
    assert await posts(rt, job) == ids and ids[0] != ids[1]


@pytest.mark.parametrize(
    "ctx", [context(ambiguous=True), context(claimed_before=True)], ids=["ambiguous", "claimed"]
)
async def test_an_attempt_that_may_follow_a_post_looks_it_up_first(
    rt: Runtime, ctx: AttemptContext
) -> None:
    sandbox = SandboxPublisher(rt.db)
    posted, never = str(uuid.uuid4()), str(uuid.uuid4())
    earlier = await sandbox.publish(request(posted), CONNECTION, context())
    found = await sandbox.publish(request(posted, 2), CONNECTION, ctx)
    assert found.outcome is Outcome.PUBLISHED and found.provider_ids == earlier.provider_ids
    assert found.published_at == earlier.published_at
    assert found.provider_response == {**earlier.provider_ids, "already_posted": True}
    assert len(await posts(rt, posted)) == 1
    # nothing found: the call goes on and posts
    fresh = await sandbox.publish(request(never, 2), CONNECTION, ctx)
    assert fresh.outcome is Outcome.PUBLISHED and len(await posts(rt, never)) == 1


async def test_confirm_only_reads(rt: Runtime) -> None:
    sandbox = SandboxPublisher(rt.db)
    posted, never = str(uuid.uuid4()), str(uuid.uuid4())
    earlier = await sandbox.publish(request(posted), CONNECTION, context())
    assert (await sandbox.confirm(request(posted), CONNECTION, context())).provider_ids == (
        earlier.provider_ids
    )
    assert (await sandbox.confirm(request(never), CONNECTION, context())).outcome is (
        Outcome.UNCONFIRMED
    )
    assert len(await posts(rt, posted)) == 1 and await posts(rt, never) == []


async def test_a_call_cut_short_after_its_post_leaves_the_post_live(rt: Runtime) -> None:
    # Half the latency passes after the post is recorded: the answer's way back.
    sandbox = SandboxPublisher(rt.db)
    job = str(uuid.uuid4())
    slow = Connection(CONNECTION.id, "default", "sandbox", "s", "active", {"latency_ms": 4000})
    call = asyncio.create_task(sandbox.publish(request(job), slow, context()))
    await eventually(lambda: posts(rt, job), timeout=10, interval=0.05)
    assert not call.done()
    call.cancel()  # a kill, a timeout or a lost claim before the answer arrives
    with pytest.raises(asyncio.CancelledError):
        await call
    assert len(await posts(rt, job)) == 1


async def test_a_post_is_dated_when_the_sandbox_took_it_not_when_its_row_was_written(
    rt: Runtime,
) -> None:
    """The sandbox writes one batch of posts at a time; a post taken while the batch before
    it is still being written waits for its row, not for its date (the bench times calls
    by it)."""
    sandbox = SandboxPublisher(rt.db)
    async with rt.db.transaction() as conn:
        await conn.execute("LOCK TABLE sandbox_posts IN EXCLUSIVE MODE")
        first = asyncio.create_task(
            sandbox.publish(request(str(uuid.uuid4())), CONNECTION, context())
        )
        await asyncio.sleep(0.1)  # the first batch's insert now waits for the lock
        taken = datetime.now(UTC)
        second = asyncio.create_task(
            sandbox.publish(request(str(uuid.uuid4())), CONNECTION, context())
        )
        await asyncio.sleep(0.5)
        assert not second.done()
    first_out, second_out = await first, await second
    assert second_out.outcome is Outcome.PUBLISHED and second_out.published_at is not None
    assert abs(second_out.published_at - taken) < timedelta(seconds=0.1)
    assert first_out.published_at is not None and first_out.published_at < taken
