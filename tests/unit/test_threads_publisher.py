"""ThreadsPublisher against the fake Threads API on loopback: every kind of post, each error
class, and no second post after a lost answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.services.publisher.platforms.threads import ThreadsPublisher
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.threads_server import FakeThreads

IMG, VID = "https://cdn.example.com/a/photo.jpg", "https://cdn.example.com/a/clip.mp4"
LINK = "https://example.com/articles/spring"


@pytest.fixture
async def th() -> AsyncIterator[FakeThreads]:
    async with FakeThreads() as fake:
        yield fake


@pytest.fixture
async def pub(th: FakeThreads) -> AsyncIterator[ThreadsPublisher]:
    publisher = ThreadsPublisher(
        th.base_url, poll_initial_seconds=0.01, poll_max_interval_seconds=0.02
    )
    yield publisher
    await publisher.close()


def ctx(th: FakeThreads, **kw: object) -> Ctx:
    return Ctx(lambda: len(th.calls("publish")), **kw)  # type: ignore[arg-type]


async def publish(
    pub: ThreadsPublisher,
    th: FakeThreads,
    assets: list[str],
    text: str,
    media_type: str | None = None,
    context: Ctx | None = None,
) -> PublishOutcome:
    req = request("threads", assets, caption=text, media_type=media_type)
    conn = connection("threads", th.token, {"threadsUserId": th.user})
    return await pub.publish(req, conn, (context or ctx(th)).context)


@pytest.mark.parametrize(
    ("assets", "media_type", "kind"),
    [
        ([LINK], None, "TEXT"),
        ([IMG], None, "IMAGE"),
        ([VID], "VIDEO", "VIDEO"),
        ([IMG, VID, IMG], "CAROUSEL", "CAROUSEL"),
    ],
)
async def test_each_kind_is_stored_then_published_once(
    pub: ThreadsPublisher, th: FakeThreads, assets: list[str], media_type: str | None, kind: str
) -> None:
    c = ctx(th)
    out = await publish(pub, th, assets, f"a {kind} post", media_type, c)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = th.posts_with(f"a {kind} post")
    assert post.kind == kind and out.provider_ids["media_id"] == post.id
    assert c.remembered == [post.container_id] and c.confirmed_at == [0]
    assert all(at == 0 for at in c.stored_at)  # every container stored before the publish
    assert th.quota_used() == 1
    if kind == "CAROUSEL":
        assert c.remembered_children == [th.containers[post.container_id].children]
    if kind == "TEXT":
        assert th.calls("create")[0].params["link_attachment"] == LINK


async def test_limits_are_checked_before_any_container(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    out = await publish(pub, th, [LINK], "a" * 497 + "🎉")  # 501 by Threads' count
    assert out.outcome is Outcome.PERMANENT_ERROR and "500" in (out.error_message or "")
    links = " ".join(f"https://e{i}.example.com" for i in range(5))
    out = await publish(pub, th, [LINK], links)
    assert out.outcome is Outcome.PERMANENT_ERROR and th.calls("create") == []


async def test_a_used_up_quota_waits_without_a_container(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.quota_total = 1
    await publish(pub, th, [LINK], "first")
    th.advance(3600)
    out = await publish(pub, th, [LINK], "second")
    assert out.outcome is Outcome.RATE_LIMITED and len(th.calls("create")) == 1
    assert out.retry_after_seconds is not None and 3000 < out.retry_after_seconds <= 86_400


@pytest.mark.parametrize(
    ("call", "code", "subcode", "outcome"),
    [
        ("create", 190, None, Outcome.AUTH_ERROR),
        ("create", 4, None, Outcome.RATE_LIMITED),
        ("publish", 9, None, Outcome.RATE_LIMITED),
        ("create", "THREADS_API__LINK_LIMIT_EXCEEDED", None, Outcome.PERMANENT_ERROR),
        ("create", 2, None, Outcome.RETRYABLE_ERROR),
        ("publish", 4, 2207051, Outcome.BLOCKED),
        ("publish", 77, None, Outcome.AMBIGUOUS),  # unknown answer to the publish
    ],
)
async def test_error_classes(
    pub: ThreadsPublisher,
    th: FakeThreads,
    call: str,
    code: int | str,
    subcode: int | None,
    outcome: Outcome,
) -> None:
    th.fail_next(call, code=code, subcode=subcode)
    out = await publish(pub, th, [LINK], "x")
    assert out.outcome is outcome, out
    assert th.threads == {}


async def test_rejected_media_is_permanent(pub: ThreadsPublisher, th: FakeThreads) -> None:
    th.reject_media("/bad/", "FAILED_PROCESSING_VIDEO")
    out = await publish(pub, th, ["https://cdn.example.com/bad/v.mp4"], "x", "VIDEO")
    assert out.outcome is Outcome.PERMANENT_ERROR
    assert "FAILED_PROCESSING_VIDEO" in (out.error_message or "") and th.threads == {}


async def test_media_not_found_publishes_the_same_container_again(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.fail_next("publish", code=24, subcode=4279009)
    out = await publish(pub, th, [IMG], "race")
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(th.calls("create")) == 1 and len(th.calls("publish")) == 2
    assert len(th.posts_with("race")) == 1


async def test_a_lost_publish_that_landed_is_read_back(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.commit_then_drop("publish")
    out = await publish(pub, th, [LINK], "landed")
    assert out.outcome is Outcome.PUBLISHED and out.provider_ids["media_id"]
    assert len(th.posts_with("landed")) == 1 and len(th.calls("publish")) == 1


async def test_code_10_with_5xx_on_publish_is_read_back_not_an_auth_error(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.fail_next("publish", code=10, status=500, commit=True)
    out = await publish(pub, th, [LINK], "false failure")
    assert out.outcome is Outcome.PUBLISHED and len(th.posts_with("false failure")) == 1


async def test_a_lost_publish_that_did_not_land_is_published_by_the_next_attempt(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.drop_next("publish")
    first = ctx(th, poll_seconds=0.05)
    out = await publish(pub, th, [LINK], "not landed", context=first)
    assert out.outcome is Outcome.AMBIGUOUS, out
    out = await publish(pub, th, [LINK], "not landed", context=first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED
    assert len(th.calls("create")) == 1 and len(th.posts_with("not landed")) == 1


async def test_a_stored_published_container_is_never_published_again(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    first = ctx(th)
    await publish(pub, th, [LINK], "once", context=first)
    again = ctx(th, stored=first.remembered[0], claimed_before=True)
    out = await publish(pub, th, [LINK], "once", context=again)
    assert out.outcome is Outcome.PUBLISHED and len(th.calls("publish")) == 1


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ({"code": 190}, Outcome.AUTH_ERROR),
        ({"code": 2, "status": 503, "is_transient": True, "times": 20}, Outcome.RETRYABLE_ERROR),
    ],
)
async def test_a_takeover_whose_read_is_refused_waits_in_doubt(
    pub: ThreadsPublisher, th: FakeThreads, fault: dict[str, Any], answer: Outcome
) -> None:
    # The copy before may have published the stored container; the read that would say is
    # refused (for the token, or for now): the job waits with the doubt noted, so that the
    # next attempt reads before it publishes.
    th.drop_next("publish")
    first = ctx(th, poll_seconds=0.05)
    assert (await publish(pub, th, [LINK], "doubt", context=first)).outcome is Outcome.AMBIGUOUS
    th.fail_next("status", **fault)
    again = ctx(th, stored=first.remembered[0], claimed_before=True, poll_seconds=0.05)
    out = await publish(pub, th, [LINK], "doubt", context=again)
    assert out.outcome is answer and out.may_be_live, out
    fresh = ctx(th)
    th.fail_next("limit", code=190)
    out = await publish(pub, th, [LINK], "fresh", context=fresh)
    assert out.outcome is Outcome.AUTH_ERROR and not out.may_be_live, out


async def test_an_expired_stored_container_is_replaced(
    pub: ThreadsPublisher, th: FakeThreads
) -> None:
    th.fail_next("publish", code=2, status=503, is_transient=True)  # lost, not landed
    first = ctx(th, poll_seconds=0.05)
    assert (await publish(pub, th, [LINK], "old", context=first)).outcome is Outcome.AMBIGUOUS
    th.advance(86_401)
    out = await publish(pub, th, [LINK], "old", context=first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED and len(th.calls("create")) == 2
    assert len(th.posts_with("old")) == 1


async def test_a_lost_claim_publishes_nothing(pub: ThreadsPublisher, th: FakeThreads) -> None:
    c = ctx(th)
    c.claim_lost = True
    with pytest.raises(Exception, match="taken over"):
        await publish(pub, th, [LINK], "lost", context=c)
    assert th.threads == {}
