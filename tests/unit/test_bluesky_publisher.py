"""BlueskyPublisher against the fake PDS and a media host on loopback: text with facets and
image posts, one session reused (refreshed when expired, a new login only when the refresh
is refused), each error class, and never a second record: the job's rkey, read back after
an unknown answer and before any later create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from herald.platforms import Outcome, PublishOutcome
from herald.services.publisher.platforms.bluesky import BlueskyPublisher
from herald.services.publisher.platforms.bluesky.text import record_key
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.bluesky_pds import FakePDS
from tests.fakes.media_host import MediaHost

AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
RL = {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}


@pytest.fixture
async def pds(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakePDS]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    async with FakePDS() as fake:
        yield fake


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub() -> AsyncIterator[BlueskyPublisher]:
    publisher = BlueskyPublisher()
    yield publisher
    await publisher.close()


def ctx(pds: FakePDS, **kw: object) -> Ctx:
    return Ctx(lambda: len(pds.calls("createRecord")), **kw)  # type: ignore[arg-type]


async def publish(
    pub: BlueskyPublisher,
    pds: FakePDS,
    text: str,
    assets: list[str] | None = None,
    *,
    context: Ctx | None = None,
    password: str | None = None,
    job: str = "job-1",
) -> PublishOutcome:
    req = request("bluesky", assets or [], caption=text, media_type="IMAGE" if assets else "TEXT")
    req = replace(req, job_id=job, scheduled_at=AT, due_at=AT)
    meta = {"identifier": pds.handle, "pdsUrl": pds.base_url}
    conn = connection("bluesky", password or pds.app_password, meta)
    return await pub.publish(req, conn, (context or ctx(pds)).context)


async def test_text_with_facets_is_one_record_under_the_jobs_key(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    text = "Spring is here 🌷 https://example.com/spring #garden [t]"
    out = await publish(pub, pds, text)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = pds.posts_with("[t]")
    assert post["uri"].endswith("/" + record_key("job-1", AT))
    assert out.provider_ids["uri"] == post["uri"]
    kinds = [f["features"][0]["$type"].rsplit("#", 1)[1] for f in post["value"]["facets"]]
    assert kinds == ["link", "tag"]


async def test_images_are_uploaded_as_blobs_then_embedded(
    pub: BlueskyPublisher, pds: FakePDS, cdn: MediaHost
) -> None:
    assets = [cdn.url("a/photo.jpg"), cdn.url("b/photo.png")]
    out = await publish(pub, pds, "two photos [i]", assets)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = pds.posts_with("[i]")
    images = post["value"]["embed"]["images"]
    assert [i["image"]["mimeType"] for i in images] == ["image/jpeg", "image/png"]
    assert len(pds.calls("uploadBlob")) == 2


async def test_one_session_is_kept_refreshed_and_renewed(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    for n in range(3):
        out = await publish(pub, pds, f"post {n}", job=f"job-{n}")
        assert out.outcome is Outcome.PUBLISHED
    assert len(pds.calls("createSession")) == 1
    pds.expire_sessions()
    assert (await publish(pub, pds, "after expiry", job="job-3")).outcome is Outcome.PUBLISHED
    assert len(pds.calls("refreshSession")) == 1 and len(pds.calls("createSession")) == 1
    pds.expire_sessions()
    pds.fail_next(
        "refreshSession", 400, {"error": "ExpiredToken", "message": "Token has been revoked"}
    )
    assert (
        await publish(pub, pds, "after a revoked refresh [r]", job="job-4")
    ).outcome is Outcome.PUBLISHED
    assert len(pds.calls("createSession")) == 2 and len(pds.posts_with("[r]")) == 1


@pytest.mark.parametrize(
    ("setup", "outcome", "wait"),
    [
        ("bad-password", Outcome.AUTH_ERROR, None),
        ("rate-limit", Outcome.RATE_LIMITED, 7.0),
        ("too-long", Outcome.PERMANENT_ERROR, None),
        ("blob-too-large", Outcome.PERMANENT_ERROR, None),
        ("image-over-cap", Outcome.PERMANENT_ERROR, None),
        ("upload-502", Outcome.RETRYABLE_ERROR, None),
    ],
)
async def test_error_classes_post_nothing(
    pub: BlueskyPublisher,
    pds: FakePDS,
    cdn: MediaHost,
    setup: str,
    outcome: Outcome,
    wait: float | None,
) -> None:
    text, assets, password = f"[{setup}]", [cdn.url("a/photo.jpg")], None
    if setup == "bad-password":
        password = "aaaa-bbbb-cccc-dddd"
    elif setup == "rate-limit":
        pds.fail_next("createRecord", 429, RL, headers={"Retry-After": "7"})
    elif setup == "too-long":
        text = "é" * 301
    elif setup == "blob-too-large":
        pds.fail_next(
            "createRecord", 400, {"error": "BlobTooLarge", "message": "This file is too large."}
        )
    elif setup == "image-over-cap":
        assets = [cdn.url("big/photo.jpg")]
    else:
        pds.fail_next(
            "uploadBlob", 502, {"error": "UpstreamFailure", "message": "Upstream Failure"}
        )
    out = await publish(pub, pds, text, assets, password=password)
    assert out.outcome is outcome, out
    assert out.retry_after_seconds == wait
    assert pds.records == {}
    assert pds.app_password not in str(out)


async def test_a_create_committed_then_dropped_is_read_back_not_repeated(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    pds.drop_next("createRecord", commit=True)
    out = await publish(pub, pds, "dropped after commit [d]")
    assert out.outcome is Outcome.PUBLISHED and out.provider_response == {
        "uri": out.provider_ids["uri"],
        "cid": out.provider_ids["cid"],
        "already_posted": True,
    }
    assert len(pds.calls("createRecord")) == 1 and len(pds.posts_with("[d]")) == 1


async def test_a_lost_create_is_ambiguous_and_the_next_attempt_reads_first(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    pds.drop_next("createRecord")  # nothing made
    first = ctx(pds)
    out = await publish(pub, pds, "lost [l]", context=first)
    assert out.outcome is Outcome.AMBIGUOUS and not pds.posts_with("[l]")
    out = await publish(pub, pds, "lost [l]", context=first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED and len(pds.posts_with("[l]")) == 1
    gets = [r.call for r in pds.requests if r.call in ("getRecord", "createRecord")]
    assert gets == ["createRecord", "getRecord", "getRecord", "createRecord"]


async def test_a_repeated_create_after_the_post_landed_makes_no_second_record(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    """A worker that died after its create went through: the next attempt's create (were it
    sent blind) would meet the taken key; it reads back first and finds the post."""
    pds.hang_next("createRecord", 5, commit=True)
    first = ctx(pds)
    first.context.call_timeout_seconds = 0.3
    out = await publish(pub, pds, "hung [h]", context=first)
    assert out.outcome is Outcome.PUBLISHED  # the read-back found it
    out = await publish(pub, pds, "hung [h]", context=ctx(pds, claimed_before=True))
    assert out.outcome is Outcome.PUBLISHED and out.provider_response["already_posted"]  # type: ignore[index]
    assert len(pds.posts_with("[h]")) == 1 and len(pds.calls("createRecord")) == 1


async def test_a_key_held_by_another_post_is_never_posted_over(
    pub: BlueskyPublisher, pds: FakePDS
) -> None:
    assert (await publish(pub, pds, "first text")).outcome is Outcome.PUBLISHED
    out = await publish(pub, pds, "other text", context=ctx(pds, ambiguous_before=True))
    assert out.outcome is Outcome.PERMANENT_ERROR and "another post" in str(out.error_message)


async def test_confirm_only_reads(pub: BlueskyPublisher, pds: FakePDS) -> None:
    req = replace(request("bluesky", [], caption="confirm me"), scheduled_at=AT)
    conn = connection(
        "bluesky", pds.app_password, {"identifier": pds.handle, "pdsUrl": pds.base_url}
    )
    assert (await pub.confirm(req, conn, ctx(pds).context)).outcome is Outcome.UNCONFIRMED
    await pub.publish(req, conn, ctx(pds).context)
    assert (await pub.confirm(req, conn, ctx(pds).context)).outcome is Outcome.PUBLISHED
    assert len(pds.calls("createRecord")) == 1


@pytest.mark.parametrize("host", ["https://10.0.0.1", "https://[::1]:8443", "http://bsky.example"])
async def test_a_non_public_host_is_refused_before_any_call(
    pub: BlueskyPublisher, pds: FakePDS, host: str
) -> None:
    req = request("bluesky", [], caption="x")
    conn = connection("bluesky", pds.app_password, {"identifier": pds.handle, "pdsUrl": host})
    out = await pub.publish(req, conn, ctx(pds).context)
    assert out.outcome is Outcome.PERMANENT_ERROR and "metadata.pdsUrl" in str(out.error_message)
    assert pds.requests == []
