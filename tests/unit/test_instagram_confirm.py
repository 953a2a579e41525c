"""InstagramPublisher.confirm (the last status read) against the fake Graph server."""

from __future__ import annotations

import aiohttp

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.shared.domain.outcomes import Outcome
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.unit.test_instagram_publisher import CAPTION, IMG, Ctx, connection, posts, request


async def create_container(fake: FakeGraph) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url}/{DEFAULT_ACCOUNT}/media",
            data={"image_url": IMG, "caption": "c", "access_token": DEFAULT_TOKEN},
        ) as resp,
    ):
        body = await resp.json()
    return str(body["id"])


def writes(fake: FakeGraph) -> int:
    return len(fake.calls("create_container")) + len(fake.calls("media_publish"))


async def test_published_container_confirms_the_post(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.commit_then_drop("media_publish")  # the post went live, the answer was lost
    first = Ctx(fake)
    out = await publisher.publish(request([IMG]), connection(), first.context)
    assert out.outcome in (Outcome.PUBLISHED, Outcome.AMBIGUOUS)
    assert len(posts(fake)) == 1 and first.remembered
    before = writes(fake)

    check = Ctx(fake, stored=first.remembered[0])
    confirmed = await publisher.confirm(request([IMG], attempt=2), connection(), check.context)

    assert confirmed.outcome is Outcome.PUBLISHED
    assert confirmed.provider_ids["container_id"] == first.remembered[0]
    assert confirmed.provider_ids["media_id"] == posts(fake)[0].id
    assert confirmed.published_at is not None
    assert writes(fake) == before and len(posts(fake)) == 1  # a read, never a publish


async def test_finished_container_and_no_post_in_the_media_is_not_live(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    cid = await create_container(fake)
    before = writes(fake)
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.RETRYABLE_ERROR  # the results service: exhausted
    assert out.provider_ids == {"container_id": cid} and "FINISHED" in (out.error_message or "")
    assert writes(fake) == before and posts(fake) == []
    assert fake.calls("media_list")  # the account's media were read too


async def test_expired_or_failed_container_and_no_post_is_not_live(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_fails_next(2207026)
    failed = await create_container(fake)
    expired = await create_container(fake)
    fake.expire(expired)
    for cid in (failed, expired):
        ctx = Ctx(fake, stored=cid).context
        out = await publisher.confirm(request([IMG]), connection(), ctx)
        assert out.outcome is Outcome.RETRYABLE_ERROR


async def test_this_jobs_caption_in_the_media_is_live_unless_it_is_not_unique(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    cid = await create_container(fake)
    [post] = fake.seed_posts([5.0], caption=CAPTION)  # the container read lags, say
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.PUBLISHED and out.provider_ids["media_id"] == post.id
    fake.seed_posts([3.0], caption=CAPTION)  # twice: names no post of this job
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.RETRYABLE_ERROR


async def test_unreadable_media_list_is_unconfirmed(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    cid = await create_container(fake)
    fake.fail_next("media_list", code=2, times=5)
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.UNCONFIRMED and "media" in (out.error_message or "")


async def test_a_throttled_read_is_rate_limited_with_the_estimate(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    cid = await create_container(fake)
    fake.fail_next("container_status", code=80002, regain_minutes=4)
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds == 240


async def test_no_stored_container_is_unconfirmed_without_calls(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake).context)
    assert out.outcome is Outcome.UNCONFIRMED
    assert fake.requests == []


async def test_unreadable_container_is_unconfirmed_and_scrubbed(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    cid = await create_container(fake)
    fake.fail_next("container_status", code=1, times=5)
    out = await publisher.confirm(request([IMG]), connection(), Ctx(fake, stored=cid).context)
    assert out.outcome is Outcome.UNCONFIRMED and out.error_code == 1
    assert DEFAULT_TOKEN not in repr(out)


async def test_bad_token_is_unconfirmed(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    cid = await create_container(fake)
    out = await publisher.confirm(
        request([IMG]), connection("wrong-token-123"), Ctx(fake, stored=cid).context
    )
    assert out.outcome is Outcome.UNCONFIRMED and out.error_code == 190
    assert "wrong-token-123" not in repr(out)
