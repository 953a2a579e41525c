"""InstagramPublisher against the fake Graph server on loopback (no Kafka/Redis/Postgres)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.instagram.reads import ContainerStatus, GraphReader
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.platforms.contract import AttemptContext, ClaimLost
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.unit.conftest import instagram

IMG = "https://cdn.example.com/a/photo.jpg"
IMG2 = "https://cdn.example.com/a/photo2.jpeg?sig=abc"
VID = "https://cdn.example.com/a/clip.mp4"
CAPTION = "Spring launch #herald"


class Ctx:
    """An AttemptContext whose remember_container records ids (and when they were stored)."""

    def __init__(
        self,
        fake: FakeGraph,
        *,
        stored: str | None = None,
        children: tuple[str, ...] = (),
        publish_sent: bool = False,
        poll_seconds: float = 2.0,
        call_timeout: float = 2.0,
        before_publish: Callable[[], None] | None = None,
    ) -> None:
        self.fake = fake
        self.before_publish = before_publish
        self.remembered: list[str] = []
        self.remembered_children: list[list[str]] = []
        self.publishes_before_remember: list[int] = []
        self.confirms_before_publish: list[int] = []
        self.claim_lost = False
        self.context = AttemptContext(
            worker="test",
            stored_container_id=stored,
            previous_outcome_ambiguous=False,
            remember_container=self._remember,
            confirm_claim=self._confirm,
            poll_seconds=poll_seconds,
            call_timeout_seconds=call_timeout,
            publish_sent=publish_sent,
            stored_children=children,
            remember_children=self._remember_children,
        )

    async def _confirm(self) -> None:
        self.confirms_before_publish.append(len(self.fake.calls("media_publish")))
        if self.claim_lost:
            raise ClaimLost("taken over")
        if self.before_publish is not None:
            self.before_publish()  # runs right before media_publish

    async def _remember_children(self, ids: Sequence[str]) -> None:
        self.remembered_children.append(list(ids))

    async def _remember(self, container_id: str) -> None:
        self.publishes_before_remember.append(len(self.fake.calls("media_publish")))
        self.remembered.append(container_id)


def request(
    assets: list[str], *, caption: str = CAPTION, media_type: str | None = None, attempt: int = 1
) -> PublishRequest:
    now = datetime.now(UTC)
    return PublishRequest(
        job_id="job-1",
        tenant_id="t",
        post_id="p",
        platform="instagram",
        connection_id="c",
        attempt=attempt,
        media_asset_ids=assets,
        caption=caption,
        media_type=media_type,
        scheduled_at=now,
        due_at=now,
        publish_deadline=now + timedelta(hours=48),
        trace_id="tr",
    )


def connection(token: str = DEFAULT_TOKEN) -> Connection:
    return Connection(
        id="c",
        tenant_id="t",
        platform="instagram",
        name="ig",
        status="active",
        metadata={"instagramBusinessAccountId": DEFAULT_ACCOUNT},
        access_token=token,
    )


async def publish(
    pub: InstagramPublisher,
    fake: FakeGraph,
    req: PublishRequest,
    ctx: Ctx | None = None,
    token: str = DEFAULT_TOKEN,
) -> PublishOutcome:
    return await pub.publish(req, connection(token), (ctx or Ctx(fake)).context)


def posts(fake: FakeGraph) -> list[Any]:
    return fake.posts[DEFAULT_ACCOUNT]


def created(fake: FakeGraph) -> list[dict[str, str]]:
    return [r.params for r in fake.calls("create_container")]


def assert_published_once(out: PublishOutcome, fake: FakeGraph) -> None:
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(posts(fake)) == 1
    assert out.published_at is not None and out.published_at.tzinfo is not None


# ---- the claim ---------------------------------------------------------------------------


async def test_the_claim_is_confirmed_right_before_each_media_publish(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=9007, subcode=2207027)  # not ready: publish again
    ctx = Ctx(fake)
    out = await publish(publisher, fake, request([IMG]), ctx)
    assert_published_once(out, fake)
    assert ctx.confirms_before_publish == [0, 1]


async def test_a_lost_claim_stops_the_attempt_before_media_publish(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    ctx = Ctx(fake)
    ctx.claim_lost = True
    with pytest.raises(ClaimLost):
        await publish(publisher, fake, request([IMG]), ctx)
    assert fake.calls("media_publish") == [] and posts(fake) == []


# ---- happy paths ------------------------------------------------------------------------


async def test_image(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    ctx = Ctx(fake)
    out = await publish(publisher, fake, request([IMG]), ctx)
    assert_published_once(out, fake)
    post = posts(fake)[0]
    assert out.provider_ids["media_id"] == post.id
    assert out.provider_ids["container_id"] == post.container_id
    assert out.provider_ids["permalink"] == post.permalink
    assert post.caption == CAPTION and post.media_type == "IMAGE"
    assert created(fake) == [{"image_url": IMG, "caption": CAPTION}]
    # the quota is checked first; the container is stored before media_publish is called
    assert fake.requests[0].call == "content_publishing_limit"
    assert ctx.remembered == [post.container_id] and ctx.publishes_before_remember == [0]


async def test_carousel_children_typed_by_extension(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    out = await publish(publisher, fake, request([IMG, VID, IMG2]))
    assert_published_once(out, fake)
    params = created(fake)
    children, parent = params[:3], params[3]
    assert sorted(c.get("media_type", "IMAGE") for c in children) == ["IMAGE", "IMAGE", "VIDEO"]
    assert all(c["is_carousel_item"] == "true" and "caption" not in c for c in children)
    assert parent["media_type"] == "CAROUSEL" and parent["caption"] == CAPTION
    assert len(parent["children"].split(",")) == 3
    assert out.provider_ids["child_container_ids"] == parent["children"]
    assert posts(fake)[0].media_type == "CAROUSEL_ALBUM"


async def test_reels_for_one_video(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    fake.container_processing(0.03, media_type="REELS")
    out = await publish(publisher, fake, request(["https://cdn.example.com/v/clip.MOV"]))
    assert_published_once(out, fake)
    assert created(fake)[0]["media_type"] == "REELS"
    assert posts(fake)[0].product_type == "REELS"


async def test_stories(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    out = await publish(publisher, fake, request([VID], media_type="STORIES"))
    assert_published_once(out, fake)
    assert created(fake) == [{"media_type": "STORIES", "video_url": VID}]
    assert posts(fake)[0].product_type == "STORY"


@pytest.mark.parametrize(
    ("assets", "media_type"),
    [
        ([VID], "IMAGE"),
        ([IMG], "REELS"),
        ([IMG], "CAROUSEL"),
        ([IMG, IMG], "STORIES"),
        ([IMG] * 11, None),
        ([], None),
        ([IMG], "GIF"),
    ],
)
async def test_impossible_requests_are_permanent_without_calls(
    publisher: InstagramPublisher, fake: FakeGraph, assets: list[str], media_type: str | None
) -> None:
    out = await publish(publisher, fake, request(assets, media_type=media_type))
    assert out.outcome is Outcome.PERMANENT_ERROR and out.error_message
    assert fake.requests == []


async def test_processing_wait(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    fake.container_processing(0.05, polls=3)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("container_status")) >= 3


async def test_fresh_container_reads_retry_100_33(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("container_status", code=100, subcode=33, times=2)
    fake.fail_next("media_read", code=100, subcode=33)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert "permalink" in out.provider_ids
    assert len(fake.calls("create_container")) == 1


async def test_permalink_failure_never_fails_a_live_post(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_read", code=100, subcode=33, times=10)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert "permalink" not in out.provider_ids and out.provider_ids["media_id"]


# ---- containers that do not finish --------------------------------------------------------


async def test_error_container_is_permanent(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    fake.container_fails_next(2207026)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.PERMANENT_ERROR
    assert out.error_subcode == 2207026 and "2207026" in (out.error_message or "")
    assert fake.calls("media_publish") == [] and posts(fake) == []


async def test_error_container_with_fetch_failure_gets_one_new_container(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_fails_next(2207052)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("create_container")) == 2


async def test_expired_container_is_retryable(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_expires_next()
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RETRYABLE_ERROR
    assert fake.calls("media_publish") == []


async def test_still_in_progress_at_the_bound_is_processing(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_processing(30.0)
    ctx = Ctx(fake, poll_seconds=0.1)
    out = await publish(publisher, fake, request([VID]), ctx)
    assert out.outcome is Outcome.PROCESSING and not out.may_be_live
    assert "IN_PROGRESS" in (out.error_message or "")
    assert fake.calls("media_publish") == []
    assert ctx.remembered == [out.provider_ids["container_id"]]  # stored as soon as created
    assert ctx.publishes_before_remember == [0] and len(fake.calls("container_status")) >= 1


async def test_not_ready_on_publish_polls_then_publishes(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=9007, subcode=2207027)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("media_publish")) == 2


async def test_9004_once_gets_a_new_container(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("create_container", code=9004, subcode=2207052)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("create_container")) == 2


async def test_9004_twice_is_permanent(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    fake.fail_next("create_container", code=9004, subcode=2207052, times=2)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.PERMANENT_ERROR
    assert (out.error_code, out.error_subcode) == (9004, 2207052)


async def test_media_error_on_create_is_permanent(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    out = await publish(publisher, fake, request(["https://cdn.example.com/x.png"]))
    assert out.outcome is Outcome.PERMANENT_ERROR
    assert (out.error_code, out.error_subcode) == (36001, 2207005)
    assert out.provider_response is not None and "fbtrace_id" in str(out.provider_response)


# ---- limits -------------------------------------------------------------------------------


async def test_quota_used_up_is_rate_limited_before_any_container(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.set_quota_used(50)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED
    assert out.retry_after_seconds == 86_400  # nothing listed: the whole window
    assert fake.calls("create_container") == []


async def test_quota_retry_after_is_when_the_oldest_post_leaves_the_window(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.seed_posts([22 * 3600.0] + [60.0] * 49)  # 50 posts; the oldest frees in 2 h
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds is not None
    assert 2 * 3600 - 10 <= out.retry_after_seconds <= 2 * 3600 + 70
    assert fake.calls("create_container") == []


async def test_quota_answer_from_media_publish(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=9, subcode=2207042)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds
    assert posts(fake) == []


async def test_rate_limit_honours_the_buc_estimate(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("create_container", code=80002, regain_minutes=7)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED
    assert out.retry_after_seconds == 7 * 60
    # the account stays paused: the next request does not call Graph at all
    calls = len(fake.requests)
    again = await publish(publisher, fake, request([IMG]))
    assert again.outcome is Outcome.RATE_LIMITED and len(fake.requests) == calls


async def test_usage_headers_near_the_limit_pause_the_account(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.set_usage(buc=95)
    assert_published_once(await publish(publisher, fake, request([IMG])), fake)
    calls = len(fake.requests)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds
    assert len(fake.requests) == calls


async def test_invalid_token_is_auth_error(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    token = "EAAGrevokedTOKEN/with+odd=chars"
    out = await publish(publisher, fake, request([IMG]), token=token)
    assert out.outcome is Outcome.AUTH_ERROR and out.error_code == 190
    assert token not in repr(out)
    assert "[redacted]" in (out.error_message or "")  # the fake echoes malformed tokens


# ---- blocks and lost answers ---------------------------------------------------------------


async def test_blocked_after_commit_is_published_once(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=4, subcode=2207051, commit=True)
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert out.provider_ids["media_id"] == posts(fake)[0].id  # found by its unique caption
    assert len(fake.calls("media_publish")) == 1


async def test_blocked_without_commit_is_blocked(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=4, subcode=2207051)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.BLOCKED
    assert (out.error_code, out.error_subcode) == (4, 2207051)
    assert posts(fake) == [] and len(fake.calls("media_publish")) == 1


async def test_368_on_publish_is_blocked(publisher: InstagramPublisher, fake: FakeGraph) -> None:
    fake.fail_next("media_publish", code=368)
    out = await publish(publisher, fake, request([IMG]))
    assert out.outcome is Outcome.BLOCKED and posts(fake) == []


async def test_commit_then_drop_is_published_once(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.commit_then_drop("media_publish")
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    assert len(fake.calls("media_publish")) == 1
    assert out.provider_ids["container_id"] == posts(fake)[0].container_id


async def test_commit_then_timeout_is_published_once(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.hang_next("media_publish", 5.0, commit=True)
    out = await publish(publisher, fake, request([IMG]), Ctx(fake, call_timeout=0.2))
    assert_published_once(out, fake)
    assert len(fake.calls("media_publish")) == 1


async def test_5xx_without_commit_then_next_attempt_publishes_same_container(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("media_publish", code=1, status=500)
    first_ctx = Ctx(fake)
    first = await publish(publisher, fake, request([IMG]), first_ctx)
    # the container reads FINISHED and the media show no post: not live now, but it may land
    assert first.outcome is Outcome.AMBIGUOUS and posts(fake) == []
    stored = first_ctx.remembered[0]
    ctx = Ctx(fake, stored=stored, publish_sent=True)
    second = await publish(publisher, fake, request([IMG], attempt=2), ctx)
    assert_published_once(second, fake)
    assert second.provider_ids["container_id"] == stored
    assert len(fake.calls("create_container")) == 1


async def test_unreadable_status_after_a_lost_answer_is_ambiguous(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    def break_status_reads() -> None:
        fake.commit_then_drop("media_publish")
        fake.fail_next("container_status", code=2, times=20)

    out = await publish(
        publisher, fake, request([IMG]), Ctx(fake, before_publish=break_status_reads)
    )
    assert out.outcome is Outcome.AMBIGUOUS  # results makes the last read (unconfirmed)
    assert len(fake.calls("media_publish")) == 1 and len(posts(fake)) == 1


# ---- a later attempt with a stored container -----------------------------------------------


async def test_stored_published_container_is_not_posted_again(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    first = await publish(publisher, fake, request([IMG]))
    assert_published_once(first, fake)
    cid = first.provider_ids["container_id"]
    creates = len(fake.calls("create_container"))
    out = await publish(publisher, fake, request([IMG], attempt=2), Ctx(fake, stored=cid))
    assert_published_once(out, fake)
    assert out.provider_ids["container_id"] == cid
    assert out.provider_ids["media_id"] == posts(fake)[0].id
    assert len(fake.calls("create_container")) == creates
    assert len(fake.calls("media_publish")) == 1


async def test_stored_published_container_with_duplicate_captions_gives_no_media_id(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    first = await publish(publisher, fake, request([IMG]))
    fake.seed_posts([10.0], caption=CAPTION)  # the same caption posted again elsewhere
    cid = first.provider_ids["container_id"]
    out = await publish(publisher, fake, request([IMG], attempt=2), Ctx(fake, stored=cid))
    assert out.outcome is Outcome.PUBLISHED
    assert out.provider_ids == {"container_id": cid}  # never a guess


async def test_stored_in_progress_container_is_polled_then_published(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_processing(30.0)
    first = await publish(publisher, fake, request([VID]), Ctx(fake, poll_seconds=0.05))
    assert first.outcome is Outcome.PROCESSING
    cid = first.provider_ids["container_id"]
    fake.ready(cid)
    out = await publish(publisher, fake, request([VID], attempt=2), Ctx(fake, stored=cid))
    assert_published_once(out, fake)
    assert len(fake.calls("create_container")) == 1


async def test_stored_expired_container_gets_a_new_one(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.container_processing(30.0)
    first = await publish(publisher, fake, request([IMG]), Ctx(fake, poll_seconds=0.05))
    cid = first.provider_ids["container_id"]
    fake.expire(cid)
    fake.container_processing(0.0)
    ctx = Ctx(fake, stored=cid)
    out = await publish(publisher, fake, request([IMG], attempt=2), ctx)
    assert_published_once(out, fake)
    assert out.provider_ids["container_id"] != cid
    assert ctx.remembered == [out.provider_ids["container_id"]]


@pytest.mark.parametrize(
    ("code", "status", "sent", "answer"),
    [
        (1, 500, True, Outcome.AMBIGUOUS),
        (100, 400, True, Outcome.AMBIGUOUS),
        (1, 500, False, Outcome.RETRYABLE_ERROR),  # never sent: it cannot be live
        (80002, 400, True, Outcome.RATE_LIMITED),  # with the wait, saying it may be live
        (190, 400, True, Outcome.AUTH_ERROR),  # waits for a new token, still in doubt
    ],
)
async def test_stored_container_unreadable_creates_nothing(
    publisher: InstagramPublisher,
    fake: FakeGraph,
    code: int,
    status: int,
    sent: bool,
    answer: Outcome,
) -> None:
    first = await publish(publisher, fake, request([IMG]))
    cid = first.provider_ids["container_id"]
    fake.fail_next("container_status", code=code, status=status, times=5)
    ctx = Ctx(fake, stored=cid, publish_sent=sent)
    out = await publish(publisher, fake, request([IMG], attempt=2), ctx)
    waits = answer in (Outcome.RATE_LIMITED, Outcome.AUTH_ERROR)
    assert out.outcome is answer and out.may_be_live is waits
    assert len(fake.calls("create_container")) == 1 and len(posts(fake)) == 1


# ---- secrets -------------------------------------------------------------------------------


async def test_token_never_in_outcomes_or_logs(
    fake: FakeGraph, throttle: Throttle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "EAAGsuperSECRET+token/x=="
    fake.add_account(DEFAULT_ACCOUNT, token)
    pub = instagram(fake, throttle)
    outcomes = []
    try:
        fake.fail_next(
            "media_publish",
            code=4,
            subcode=2207051,
            commit=True,
            message=f"blocked while using {token}",
        )
        outcomes.append(await publish(pub, fake, request([IMG]), token=token))
        fake.fail_next("create_container", code=100, message=f"bad access_token={token}")
        outcomes.append(await publish(pub, fake, request([IMG]), token=token))
        fake.drop_next("media_publish")
        lost = request([IMG], caption="another post")  # not the live one's caption
        outcomes.append(await publish(pub, fake, lost, token=token))
        outcomes.append(await publish(pub, fake, request([IMG]), token=token + "x"))
    finally:
        await pub.close()
    assert [o.outcome for o in outcomes] == [
        Outcome.PUBLISHED,
        Outcome.PERMANENT_ERROR,
        Outcome.AMBIGUOUS,  # the answer was lost: it may land yet
        Outcome.AUTH_ERROR,
    ]
    for out in outcomes:
        text = repr(out) + repr(dataclasses.asdict(out))
        assert token not in text and "EAAGsuperSECRET" not in text
    assert caplog.records, "the publisher logs its steps"
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.__dict__)
        assert "EAAGsuperSECRET" not in rendered
    logged = [r for r in caplog.records if r.name.startswith("herald.services.publisher")]
    assert all(
        getattr(r, "job_id", None) == "job-1" and getattr(r, "attempt", None) == 1 for r in logged
    )


# ---- failures around the irreversible call ------------------------------------------------


async def test_remember_failure_stops_before_media_publish(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    class StoreDown(Exception):
        pass

    async def fail(container_id: str) -> None:
        raise StoreDown(container_id)

    ctx = Ctx(fake)
    ctx.context.remember_container = fail
    with pytest.raises(StoreDown):
        await publish(publisher, fake, request([IMG]), ctx)
    assert fake.calls("media_publish") == [] and posts(fake) == []


async def test_unexpected_error_after_media_publish_is_ambiguous(
    publisher: InstagramPublisher, fake: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: GraphReader, cid: str, reads: int) -> ContainerStatus:
        raise RuntimeError(f"bug while reading {cid} with {DEFAULT_TOKEN}")

    monkeypatch.setattr(GraphReader, "settle", broken)
    fake.commit_then_drop("media_publish")
    ctx = Ctx(fake)
    out = await publish(publisher, fake, request([IMG]), ctx)
    assert out.outcome is Outcome.AMBIGUOUS  # the next attempt reads the container first
    assert out.provider_ids == {"container_id": ctx.remembered[0]}
    assert DEFAULT_TOKEN not in repr(out)


async def test_an_error_after_media_publish_answered_an_id_keeps_the_post(
    publisher: InstagramPublisher, fake: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: GraphReader, media_id: str) -> str:
        raise RuntimeError(f"bug while reading {media_id}")

    monkeypatch.setattr(GraphReader, "permalink", broken)
    ctx = Ctx(fake)
    out = await publish(publisher, fake, request([IMG]), ctx)
    assert_published_once(out, fake)  # final once media_publish answered with an id
    assert out.provider_ids["media_id"] == posts(fake)[0].id
    assert ctx.context.settled == out


async def test_unreadable_publishing_limit_does_not_stop_the_post(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("content_publishing_limit", code=2)
    assert_published_once(await publish(publisher, fake, request([IMG])), fake)


async def test_carousel_child_fetch_failure_gets_one_new_child(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.fail_next("create_container", code=9004, subcode=2207052)
    out = await publish(publisher, fake, request([IMG, IMG2]))
    assert_published_once(out, fake)
    assert len(fake.calls("create_container")) == 4  # 2 children + 1 retry + parent
