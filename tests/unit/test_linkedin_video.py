"""LinkedIn video posts against the fake LinkedIn: the video downloaded and checked, uploaded
in the parts LinkedIn names with their ETags, its urn stored before any wait, the post
naming it once it is AVAILABLE; still processing is `processing` and the next attempt reads
the stored video instead of uploading again; an expired upload URL gets one new upload;
each refusal posts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.platforms import Outcome, PublishOutcome
from herald.services.publisher.platforms.linkedin import LinkedInPublisher, video
from herald.services.publisher.platforms.rest.oauth2 import pack
from herald.shared.jobs.validation import check_media
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.platforms.registry import platforms
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.media_host import MediaHost

CLIP = "big/clip.mp4"  # 1.5 MB of ten seconds: three parts of 600,000 bytes


@pytest.fixture
async def li(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLinkedIn]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    monkeypatch.setattr(video, "FIRST_POLL", 0.05)
    async with FakeLinkedIn() as fake:
        fake.part_bytes, fake.processing_seconds = 600_000, 0.2
        yield fake


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub(li: FakeLinkedIn) -> AsyncIterator[LinkedInPublisher]:
    publisher = LinkedInPublisher(li.base_url, "202601")
    yield publisher
    await publisher.close()


def ctx(li: FakeLinkedIn, **kw: object) -> Ctx:
    return Ctx(lambda: len(li.calls("post")), **kw)  # type: ignore[arg-type]


async def publish(
    pub: LinkedInPublisher, li: FakeLinkedIn, asset: str, context: Ctx, text: str = "a clip [v]"
) -> PublishOutcome:
    req = request("linkedin", [asset], caption=text, media_type="VIDEO")
    conn = connection("linkedin", pack(li.token, "r" * 40), {"author": li.author})
    return await pub.publish(req, conn, context.context)


def initialized(li: FakeLinkedIn) -> int:
    return sum("initializeUploadRequest" in c.body for c in li.calls("videos"))


async def test_a_video_is_uploaded_in_parts_processed_and_posted_once(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost
) -> None:
    c = ctx(li)
    out = await publish(pub, li, cdn.url(CLIP), c)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = li.posts_with("[v]")
    (clip,) = li.videos.values()
    assert post.images == [clip.urn] and clip.status == "AVAILABLE"
    assert len(li.calls("video_part")) == 3 and clip.size == len(clip.text)
    assert c.remembered == [clip.urn] and c.remembered_children == [[clip.urn]]
    assert c.stored_at == [0, 0]  # stored before the post
    (init, finalize) = [call.body for call in li.calls("videos")]
    assert init["initializeUploadRequest"]["fileSizeBytes"] == clip.size
    assert finalize["finalizeUploadRequest"]["uploadedPartIds"] == [
        f'"{p.etag}"' for p in clip.parts
    ]


async def test_still_processing_comes_back_and_never_uploads_twice(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost
) -> None:
    li.hold(CLIP, 30)
    first = ctx(li, poll_seconds=0.3)
    out = await publish(pub, li, cdn.url(CLIP), first)
    assert out.outcome is Outcome.PROCESSING, out
    assert li.posts == [] and len(first.remembered) == 1
    li.advance(31)
    later = ctx(li, stored=first.remembered[0])
    out = await publish(pub, li, cdn.url(CLIP), later)
    assert out.outcome is Outcome.PUBLISHED, out
    assert initialized(li) == 1 and len(li.posts_with("[v]")) == 1


async def test_a_stored_video_linkedin_does_not_know_is_uploaded_again(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost
) -> None:
    out = await publish(pub, li, cdn.url(CLIP), ctx(li, stored="urn:li:video:gone"))
    assert out.outcome is Outcome.PUBLISHED, out
    assert initialized(li) == 1


async def test_an_expired_upload_url_gets_one_new_upload(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost
) -> None:
    li.expired_uploads = 1
    out = await publish(pub, li, cdn.url(CLIP), ctx(li))
    assert out.outcome is Outcome.PUBLISHED, out
    assert initialized(li) == 2 and len(li.posts) == 1
    li.expired_uploads = 2
    out = await publish(pub, li, cdn.url(CLIP), ctx(li), text="again [w]")
    assert out.outcome is Outcome.RETRYABLE_ERROR and "expired" in str(out.error_message)
    assert li.posts_with("[w]") == []


async def test_a_lost_create_is_read_back_without_a_new_upload(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost
) -> None:
    li.drop_next("post", commit=True)
    first = ctx(li)
    out = await publish(pub, li, cdn.url(CLIP), first)
    assert out.outcome is Outcome.PUBLISHED, out  # read back at once
    assert out.provider_response["already_posted"] is True
    out = await publish(pub, li, cdn.url(CLIP), first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED, out
    assert initialized(li) == 1 and len(li.posts) == 1


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("failed", "LinkedIn failed the video"),
        ("too-small", "LinkedIn takes at least 76800"),
        ("too-long", "LinkedIn takes 3 s to 2 min"),
        ("not-mp4", "LinkedIn takes MP4 videos"),
    ],
)
async def test_refused_videos_post_nothing(
    pub: LinkedInPublisher,
    li: FakeLinkedIn,
    cdn: MediaHost,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    why: str,
) -> None:
    asset = cdn.url(CLIP)
    if case == "failed":
        li.fail_processing(CLIP)
    elif case == "too-small":
        asset = cdn.url("a/clip.mp4")  # 4 KB
    elif case == "too-long":
        monkeypatch.setattr(video, "MIN_VIDEO_BYTES", 1000)
        monkeypatch.setattr(video, "MAX_VIDEO_SECONDS", 100.0)
        asset = cdn.url("long/clip.mp4")  # 200 s
    else:
        asset = cdn.url("big/clip.mp4.jpg")
    out = await publish(pub, li, asset, ctx(li))
    assert out.outcome is Outcome.PERMANENT_ERROR, out
    assert why in str(out.error_message)
    assert li.posts == []
    assert (initialized(li) == 1) is (case == "failed")


def test_scheduling_takes_one_mp4_video_for_the_video_kind() -> None:
    rules = platforms()["linkedin"].media
    clip = "https://cdn.example/a.mp4"
    assert check_media("linkedin", rules, [clip], "VIDEO") == {}
    assert "exactly 1" in check_media("linkedin", rules, [clip, clip], "VIDEO")["media_asset_ids"]
    mov = check_media("linkedin", rules, ["https://cdn.example/a.mov"], "VIDEO")
    assert mov["media_asset_ids"] == "VIDEO needs video assets (.mp4) on linkedin"
    assert rules.max_video_bytes == 500 * 1024 * 1024
