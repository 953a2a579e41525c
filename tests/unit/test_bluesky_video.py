"""Bluesky video posts against the fake PDS and video service: the upload limits read, the
video downloaded, checked and uploaded with a service token for the PDS, its processing job
stored before any wait, the blob embedded; still processing is `processing` and the next
attempt reads the stored job instead of uploading again; each refusal posts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from herald.platforms import Outcome, PublishOutcome
from herald.services.publisher.platforms.bluesky import BlueskyPublisher, video
from herald.shared.jobs.validation import check_media
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.platforms.registry import platforms
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.bluesky_pds import FakePDS
from tests.fakes.bluesky_video import FakeVideoService, did_web
from tests.fakes.media_host import MediaHost

AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
Fakes = tuple[FakePDS, FakeVideoService]


@pytest.fixture
async def fakes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fakes]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    monkeypatch.setattr(video, "FIRST_POLL", 0.05)
    async with FakePDS() as pds, FakeVideoService(pds, processing_seconds=0.2) as service:
        yield pds, service


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub() -> AsyncIterator[BlueskyPublisher]:
    publisher = BlueskyPublisher()
    yield publisher
    await publisher.close()


def ctx(fakes: Fakes, **kw: object) -> Ctx:
    return Ctx(lambda: len(fakes[0].calls("createRecord")), **kw)  # type: ignore[arg-type]


async def publish(
    pub: BlueskyPublisher, fakes: Fakes, asset: str, context: Ctx, text: str = "a clip [v]"
) -> PublishOutcome:
    pds, service = fakes
    req = request("bluesky", [asset], caption=text, media_type="VIDEO")
    req = replace(req, job_id="job-v", scheduled_at=AT, due_at=AT)
    meta = {"identifier": pds.handle, "pdsUrl": pds.base_url, "videoUrl": service.base_url}
    return await pub.publish(req, connection("bluesky", pds.app_password, meta), context.context)


async def test_a_video_is_uploaded_processed_and_embedded_once(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    c = ctx(fakes)
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), c)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = pds.posts_with("[v]")
    embed = post["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.video"
    assert embed["video"]["mimeType"] == "video/mp4"
    (job,) = service.jobs.values()
    assert c.remembered == [job.id] and c.stored_at == [0]  # stored before the post
    assert len(service.calls("getUploadLimits")) == 1
    auds = {t.aud: t.lxm for t in pds.service_tokens.values()}
    assert auds[did_web(pds.base_url)] == "com.atproto.repo.uploadBlob"
    assert auds[did_web(service.base_url)] == "app.bsky.video.getUploadLimits"


async def test_still_processing_comes_back_and_never_uploads_twice(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    service.processing_seconds = 60
    first = ctx(fakes, poll_seconds=0.2)
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), first)
    assert out.outcome is Outcome.PROCESSING, out
    assert "JOB_STATE_ENCODING" in str(out.error_message) and not pds.records
    service.advance(61)
    later = ctx(fakes, stored=first.remembered[-1])
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), later)
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(service.calls("uploadVideo")) == 1 and len(pds.posts_with("[v]")) == 1


async def test_a_stored_job_the_service_forgot_is_uploaded_again(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), ctx(fakes, stored="gone"))
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(service.calls("uploadVideo")) == 1 and len(pds.posts_with("[v]")) == 1


async def test_a_lost_upload_answer_then_the_same_bytes_find_the_first_job(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    service.drop_next("uploadVideo", commit=True)
    first = ctx(fakes)
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), first)
    assert out.outcome is Outcome.RETRYABLE_ERROR and not pds.records, out
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), ctx(fakes))
    assert out.outcome is Outcome.PUBLISHED, out
    assert [r.status for r in service.calls("uploadVideo")] == [-1, 409]
    assert len(service.jobs) == 1 and len(pds.posts_with("[v]")) == 1


async def test_an_expired_service_token_gets_one_new_token(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    service.fail_next("uploadVideo", 401, {"error": "JwtExpired", "message": "jwt expired"})
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), ctx(fakes))
    assert out.outcome is Outcome.PUBLISHED, out
    assert [r.status for r in service.calls("uploadVideo")] == [401, 200]
    assert len(pds.posts_with("[v]")) == 1


async def test_a_lost_create_is_read_back_without_a_new_upload(
    pub: BlueskyPublisher, fakes: Fakes, cdn: MediaHost
) -> None:
    pds, service = fakes
    pds.drop_next("createRecord")
    first = ctx(fakes)
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), first)
    assert out.outcome is Outcome.AMBIGUOUS, out
    out = await publish(pub, fakes, cdn.url("a/clip.mp4"), first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(service.calls("uploadVideo")) == 1 and len(pds.posts_with("[v]")) == 1


@pytest.mark.parametrize(
    ("case", "outcome", "says"),
    [
        ("too-long", Outcome.PERMANENT_ERROR, "Bluesky takes at most 180 s"),
        ("too-large", Outcome.PERMANENT_ERROR, "over the 1000-byte cap"),
        ("failed", Outcome.PERMANENT_ERROR, "could not be processed"),
        ("daily-limit", Outcome.RATE_LIMITED, "daily video limit"),
        ("not-video", Outcome.PERMANENT_ERROR, "not a video"),
    ],
)
async def test_refused_videos_post_nothing(
    pub: BlueskyPublisher,
    fakes: Fakes,
    cdn: MediaHost,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    outcome: Outcome,
    says: str,
) -> None:
    pds, service = fakes
    asset = cdn.url("long/clip.mp4" if case == "too-long" else "a/clip.mp4")
    if case == "too-large":
        monkeypatch.setattr(video, "MAX_VIDEO_BYTES", 1000)
    if case == "failed":
        service.fail_processing("a/clip.mp4")
    if case == "daily-limit":
        service.daily_videos = 0
    if case == "not-video":
        asset = cdn.url("a/clip.mp4.jpg")
    out = await publish(pub, fakes, asset, ctx(fakes))
    assert out.outcome is outcome and says in str(out.error_message), out
    assert not pds.records
    uploaded = len(service.calls("uploadVideo"))
    assert uploaded == (1 if case == "failed" else 0)
    if case == "daily-limit":
        assert out.retry_after_seconds == 3600


def test_scheduling_takes_one_video_for_the_video_kind() -> None:
    rules = platforms()["bluesky"].media
    clip = "https://cdn.example/a.mp4"
    assert check_media("bluesky", rules, [clip], "VIDEO") == {}
    two = check_media("bluesky", rules, [clip, clip], "VIDEO")["media_asset_ids"]
    assert "exactly 1" in two and "bluesky" in two
    assert (
        "video"
        in check_media("bluesky", rules, ["https://cdn.example/a.jpg"], "VIDEO")["media_asset_ids"]
    )
    assert rules.max_video_bytes == 100_000_000
