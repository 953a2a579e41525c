"""After an unknown media_publish answer: reads before any new publish, throttles during the
reads, and the answers that need a wait (not ready, builder gone, a bare 429)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.outcomes import Outcome
from tests.fakes.graph_server import FakeGraph
from tests.unit.conftest import instagram
from tests.unit.test_instagram_publisher import (
    IMG,
    Ctx,
    assert_published_once,
    posts,
    publish,
    request,
)

# ---- a publish whose answer was lost stays ambiguous until a read says otherwise ----------


async def test_a_lost_answer_with_the_container_still_finished_stays_ambiguous(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.hang_next("media_publish", 5.0)  # not live; the answer never comes
    out = await publish(publisher, fake, request([IMG]), Ctx(fake, call_timeout=0.2))
    assert out.outcome is Outcome.AMBIGUOUS  # FINISHED now does not prove it never lands
    assert posts(fake) == [] and fake.calls("media_list")  # the account's media were read


async def test_a_post_the_container_read_does_not_show_yet_is_found_in_the_media(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.status_lags(3600.0)
    fake.commit_then_drop("media_publish")
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert out.provider_ids["media_id"] == posts(fake)[0].id
    assert len(fake.calls("media_publish")) == 1


async def test_the_next_attempt_reads_the_container_and_the_media_before_publishing(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.status_lags(3600.0)
    fake.commit_then_drop("media_publish")
    fake.fail_next("media_list", code=2, times=20)  # the first attempt cannot see its post
    first_ctx = Ctx(fake)
    first = await publish(publisher, fake, request([IMG]), first_ctx)
    assert first.outcome is Outcome.AMBIGUOUS and len(posts(fake)) == 1
    fake.clear_faults()
    stored = first_ctx.remembered[-1]
    second = await publish(
        publisher, fake, request([IMG], attempt=2), Ctx(fake, stored=stored, publish_sent=True)
    )
    assert_published_once(second, fake)
    assert len(fake.calls("media_publish")) == 1  # found in the media: never published again


async def test_an_error_to_a_second_publish_stays_ambiguous_while_the_first_may_be_live(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.status_lags(3600.0)
    fake.commit_then_drop("media_publish")
    fake.fail_next("media_list", code=2, times=50)  # nothing shows the post
    first_ctx = Ctx(fake)
    await publish(publisher, fake, request([IMG]), first_ctx)
    stored = first_ctx.remembered[-1]
    ctx = Ctx(fake, stored=stored, publish_sent=True)
    second = await publish(publisher, fake, request([IMG], attempt=2), ctx)
    # The container still reads FINISHED, so it is published again; Graph refuses (it is
    # live), which is no reason to call the post failed.
    assert second.outcome is Outcome.AMBIGUOUS
    assert len(posts(fake)) == 1


# ---- rate limits during the reads ----------------------------------------------------------


async def test_a_throttled_read_after_a_lost_answer_is_rate_limited_with_the_estimate(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    def throttle_reads() -> None:
        fake.hang_next("media_publish", 5.0)
        fake.fail_next("container_status", code=80002, regain_minutes=2, times=10)

    ctx = Ctx(fake, call_timeout=0.2, before_publish=throttle_reads)
    out = await publish(publisher, fake, request([IMG]), ctx)
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds == 120
    assert out.may_be_live  # the results service keeps the job out of `missed`


async def test_a_throttled_media_read_before_a_second_publish_is_rate_limited(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    first_ctx = Ctx(fake)
    fake.hang_next("media_publish", 5.0)
    first_ctx.context.call_timeout_seconds = 0.2
    await publish(publisher, fake, request([IMG]), first_ctx)
    fake.fail_next("media_list", code=80002, regain_minutes=3, times=5)
    ctx = Ctx(fake, stored=first_ctx.remembered[-1], publish_sent=True)
    out = await publish(publisher, fake, request([IMG], attempt=2), ctx)
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds == 180
    assert len(fake.calls("media_publish")) == 1 and posts(fake) == []


# ---- answers that ask for a wait -----------------------------------------------------------


async def test_a_bare_429_on_media_publish_is_a_throttle(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.throttle_bare_next("media_publish", retry_after=7)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds == 7
    assert posts(fake) == []


@pytest.fixture
async def patient(fake: FakeGraph, throttle: Throttle) -> AsyncIterator[InstagramPublisher]:
    pub = instagram(fake, throttle, poll_initial_seconds=0.05, poll_max_interval_seconds=0.2)
    yield pub
    await pub.close()


async def test_not_ready_on_publish_waits_between_tries(
    patient: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=9007, subcode=2207027, times=3)
    out = await publish(patient, fake, request([IMG]), Ctx(fake, poll_seconds=10.0))
    assert_published_once(out, fake)
    times = [r.at for r in fake.calls("media_publish")]
    assert len(times) == 4
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.05


async def test_not_ready_with_no_time_left_is_processing_not_a_burst_of_tries(
    patient: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=9007, subcode=2207027, times=3)
    out = await publish(patient, fake, request([IMG]), Ctx(fake, poll_seconds=0.01))
    assert out.outcome is Outcome.PROCESSING and posts(fake) == []
    assert len(fake.calls("media_publish")) == 1  # no try without a wait before it


async def test_builder_gone_retries_the_same_container_before_replacing_it(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=24, subcode=2207008)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("create_container")) == 1  # the same container, published
    calls = [r.call for r in fake.requests]
    first = calls.index("media_publish")
    assert "container_status" in calls[first:]  # its status read before trying again


async def test_builder_gone_again_on_the_deferred_try_gets_a_new_container(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=24, subcode=2207008, times=3)
    ctx = Ctx(fake, poll_seconds=0.005)  # no time left for the waits in this attempt
    first = await publish(publisher, fake, request([IMG]), ctx)
    assert first.outcome is Outcome.RETRYABLE_ERROR and first.retry_after_seconds == 0.01
    stored = ctx.remembered[-1]
    second = await publish(publisher, fake, request([IMG], attempt=2), Ctx(fake, stored=stored))
    assert_published_once(second, fake)
    assert second.provider_ids["container_id"] != stored  # not a third try of the same one
    assert len(fake.calls("create_container")) == 2


async def test_a_quota_answer_waits_for_the_window_graph_reports(throttle: Throttle) -> None:
    async with FakeGraph(time_scale=1440.0) as scaled:  # a day's window in a minute
        pub = instagram(scaled, throttle)
        try:
            scaled.seed_posts([30.0])  # leaves the window in 30 s
            scaled.fail_next("media_publish", code=9, subcode=2207042)
            out = await publish(pub, scaled, request([IMG]))
        finally:
            await pub.close()
    assert out.outcome is Outcome.RATE_LIMITED
    assert out.retry_after_seconds is not None and 29 <= out.retry_after_seconds <= 32


async def test_a_quota_answer_with_the_quota_unreadable_backs_off_instead_of_a_day(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    # The check before the container and the read after the quota answer both fail: the
    # wait is unknown, so no retry_after (the results service backs off, and the next
    # attempt reads the quota first), never the 24 h fallback that strands the job.
    fake.fail_next("content_publishing_limit", code=2, times=2)
    fake.fail_next("media_publish", code=9, subcode=2207042)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds is None
    assert len(fake.calls("content_publishing_limit")) == 2


async def test_a_quota_answer_with_the_media_lists_unreadable_backs_off(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_list", code=2)
    fake.fail_next("stories_list", code=2)
    fake.fail_next("media_publish", code=9, subcode=2207042)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds is None
    assert len(fake.calls("media_list")) == len(fake.calls("stories_list")) == 1


async def test_carousel_items_still_processing_are_reused_not_created_again(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_processing(600.0, media_type="VIDEO")  # the video item takes 10 minutes
    carousel = request([IMG, "https://cdn.example.com/a/clip.mp4"])
    first_ctx = Ctx(fake, poll_seconds=0.05)
    first = await publish(publisher, fake, carousel, first_ctx)
    assert first.outcome is Outcome.PROCESSING
    [items] = first_ctx.remembered_children  # stored as soon as they existed
    assert len(items) == 2 and first_ctx.remembered == []  # no parent yet
    again = await publish(
        publisher,
        fake,
        request(carousel.media_asset_ids, attempt=2),
        Ctx(fake, children=tuple(items), poll_seconds=0.05),
    )
    assert again.outcome is Outcome.PROCESSING
    for cid in items:
        fake.ready(cid)
    ctx = Ctx(fake, children=tuple(items))
    out = await publish(publisher, fake, request(carousel.media_asset_ids, attempt=3), ctx)
    assert_published_once(out, fake)
    assert out.provider_ids["child_container_ids"] == ",".join(items)
    assert len(fake.calls("create_container")) == 3  # two items and one parent, ever
    assert ctx.remembered_children == []


async def test_carousel_items_that_expired_are_replaced(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_processing(600.0, media_type="VIDEO")
    carousel = request([IMG, "https://cdn.example.com/a/clip.mp4"])
    await publish(publisher, fake, carousel, Ctx(fake, poll_seconds=0.05))
    items = [c.id for c in fake.containers.values()]
    fake.expire(items[0])
    fake.container_processing(0.0, media_type="VIDEO")
    ctx = Ctx(fake, children=tuple(items))
    out = await publish(publisher, fake, request(carousel.media_asset_ids, attempt=2), ctx)
    assert_published_once(out, fake)
    assert len(ctx.remembered_children) == 1 and set(ctx.remembered_children[0]).isdisjoint(items)
