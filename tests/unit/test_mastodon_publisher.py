"""MastodonPublisher against the fake instance and a media host on loopback: text, images and
a video (202, polled until processed), the instance's limits, each error class, and never a
second status: one Idempotency-Key per job, resent after an unknown answer, and a read of
the account's statuses before posting again once the key may be forgotten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from herald.platforms import Outcome, PublishOutcome
from herald.services.publisher.platforms.mastodon import MastodonPublisher, idempotency_key
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.mastodon_instance import FakeMastodon
from tests.fakes.media_host import MediaHost

SLOW = {"error": "There was a temporary problem serving your request, please try again"}


@pytest.fixture
async def m(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMastodon]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub() -> AsyncIterator[MastodonPublisher]:
    publisher = MastodonPublisher(
        poll_initial_seconds=0.01, poll_max_seconds=0.02, resend_pause_seconds=0.01
    )
    yield publisher
    await publisher.close()


def ctx(m: FakeMastodon, **kw: object) -> Ctx:
    return Ctx(lambda: len(m.calls("status")), **kw)  # type: ignore[arg-type]


async def publish(
    pub: MastodonPublisher,
    m: FakeMastodon,
    text: str,
    assets: list[str] | None = None,
    media_type: str | None = None,
    *,
    context: Ctx | None = None,
    token: str | None = None,
    job: str = "job-1",
) -> PublishOutcome:
    kind = media_type or ("IMAGE" if assets else "TEXT")
    req = replace(request("mastodon", assets or [], caption=text, media_type=kind), job_id=job)
    conn = connection("mastodon", token or m.token, {"instanceUrl": m.base_url})
    return await pub.publish(req, conn, (context or ctx(m)).context)


@pytest.mark.parametrize(
    ("assets", "kind"),
    [([], "TEXT"), (["a/photo.jpg", "b/photo.png"], "IMAGE"), (["a/clip.mp4"], "VIDEO")],
)
async def test_each_kind_is_one_status_with_its_key(
    pub: MastodonPublisher, m: FakeMastodon, cdn: MediaHost, assets: list[str], kind: str
) -> None:
    out = await publish(pub, m, f"a {kind} post [k]", [cdn.url(a) for a in assets], kind)
    assert out.outcome is Outcome.PUBLISHED, out
    (status,) = m.posts_with("[k]")
    assert out.provider_ids == {"status_id": status.id}
    assert len(status.media) == len(assets)
    assert m.calls("status")[0].headers["Idempotency-Key"] == idempotency_key("job-1")
    if kind == "VIDEO":  # 202, then polled until 200
        assert [r.status for r in m.calls("media_read")] == [206, 206, 200]


async def test_the_instances_limits_are_read_and_kept(
    pub: MastodonPublisher, m: FakeMastodon
) -> None:
    url = "https://example.com/" + "x" * 300
    assert (await publish(pub, m, "y" * 470 + " " + url)).outcome is Outcome.PUBLISHED
    out = await publish(pub, m, "z" * 501, job="job-2")
    assert out.outcome is Outcome.PERMANENT_ERROR and "takes 500" in str(out.error_message)
    assert len(m.calls("instance")) == 1 and len(m.calls("status")) == 1


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        ("bad-token", Outcome.AUTH_ERROR),
        ("rate-limit", Outcome.RATE_LIMITED),
        ("media-rejected", Outcome.PERMANENT_ERROR),
        ("wrong-media", Outcome.PERMANENT_ERROR),
        ("media-503", Outcome.RETRYABLE_ERROR),
    ],
)
async def test_error_classes_post_nothing(
    pub: MastodonPublisher, m: FakeMastodon, cdn: MediaHost, setup: str, outcome: Outcome
) -> None:
    token, assets, kind = None, [cdn.url("a/photo.jpg")], "IMAGE"
    if setup == "bad-token":
        token = "x" * 43
    elif setup == "rate-limit":
        reset = datetime.fromtimestamp(m.now() + 30, UTC).isoformat().replace("+00:00", "Z")
        m.fail_next(
            "status", 429, {"error": "Too many requests"}, headers={"X-RateLimit-Reset": reset}
        )
    elif setup == "media-rejected":
        m.fail_next("media", 422, {"error": "Validation failed: File content type is invalid"})
    elif setup == "wrong-media":
        kind = "VIDEO"  # a JPEG named as a video
    else:
        m.fail_next("media", 503, SLOW)
    out = await publish(pub, m, f"[{setup}]", assets, kind, token=token)
    assert out.outcome is outcome, out
    assert m.statuses == []
    if setup == "rate-limit":
        assert out.retry_after_seconds is not None and 20 < out.retry_after_seconds <= 31
    assert m.token not in str(out)


async def test_an_unknown_answer_is_resent_with_the_same_key(
    pub: MastodonPublisher, m: FakeMastodon
) -> None:
    m.drop_next("status", commit=True)
    m.fail_next("status", 503, SLOW)
    out = await publish(pub, m, "made, then the answer lost [d]")
    assert out.outcome is Outcome.PUBLISHED, out
    keys = {r.headers["Idempotency-Key"] for r in m.calls("status")}
    assert len(m.calls("status")) == 3 and len(keys) == 1
    assert len(m.posts_with("[d]")) == 1


async def test_after_the_keys_hour_the_next_attempt_reads_before_posting(
    pub: MastodonPublisher, m: FakeMastodon
) -> None:
    m.drop_next("status", commit=True)
    for _ in range(2):
        m.drop_next("status")
    first = ctx(m)
    out = await publish(pub, m, "lost answers [h]", context=first)
    assert out.outcome is Outcome.AMBIGUOUS and len(m.posts_with("[h]")) == 1
    m.forget_keys()  # the retry comes more than an hour later
    out = await publish(pub, m, "lost answers [h]", context=first.next_attempt())
    assert out.outcome is Outcome.PUBLISHED and out.provider_response["already_posted"]  # type: ignore[index]
    assert len(m.posts_with("[h]")) == 1 and len(m.calls("status")) == 3


async def test_confirm_only_reads(pub: MastodonPublisher, m: FakeMastodon) -> None:
    req = request("mastodon", [], caption="confirm me", media_type="TEXT")
    conn = connection("mastodon", m.token, {"instanceUrl": m.base_url})
    assert (await pub.confirm(req, conn, ctx(m).context)).outcome is Outcome.UNCONFIRMED
    await pub.publish(req, conn, ctx(m).context)
    assert (await pub.confirm(req, conn, ctx(m).context)).outcome is Outcome.PUBLISHED
    assert len(m.calls("status")) == 1


async def test_a_non_public_instance_is_refused_before_any_call(
    pub: MastodonPublisher, m: FakeMastodon
) -> None:
    req = request("mastodon", [], caption="x", media_type="TEXT")
    conn = connection("mastodon", m.token, {"instanceUrl": "https://169.254.169.254"})
    out = await pub.publish(req, conn, ctx(m).context)
    assert out.outcome is Outcome.PERMANENT_ERROR and "metadata.instanceUrl" in str(
        out.error_message
    )
