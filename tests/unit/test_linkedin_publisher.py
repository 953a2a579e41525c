"""LinkedInPublisher against the fake LinkedIn and a media host on loopback: each kind, the
versioned headers, little-format escaping, each error class, never a second post after a
lost answer (the author's posts read before any retry), and the OAuth sign-in and refresh.
The fake's own strictness is checked first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from herald.platforms import AuthLost, Outcome, PublishOutcome
from herald.services.publisher.platforms.linkedin import LinkedInPublisher
from herald.services.publisher.platforms.linkedin import tokens as li_tokens
from herald.services.publisher.platforms.linkedin.api import little
from herald.services.publisher.platforms.rest.oauth2 import pack, unpack
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.media_host import MediaHost

VERSION = "202601"


@pytest.fixture
async def li(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeLinkedIn]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    async with FakeLinkedIn() as fake:
        yield fake


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub(li: FakeLinkedIn) -> AsyncIterator[LinkedInPublisher]:
    publisher = LinkedInPublisher(li.base_url, VERSION)
    yield publisher
    await publisher.close()


def settings(li: FakeLinkedIn) -> Any:
    return SimpleNamespace(
        linkedin_api_url=li.base_url,
        linkedin_oauth_url=f"{li.base_url}/oauth/v2",
        linkedin_client_id=li.client_id,
        linkedin_client_secret=SecretStr(li.client_secret),
    )


async def publish(
    pub: LinkedInPublisher,
    li: FakeLinkedIn,
    text: str,
    assets: list[str] | None = None,
    *,
    context: Ctx | None = None,
    token: str | None = None,
) -> PublishOutcome:
    kind = "TEXT" if not assets else "IMAGE" if len(assets) == 1 else "MULTI_IMAGE"
    req = replace(request("linkedin", assets or [], caption=text, media_type=kind))
    conn = connection("linkedin", pack(token or li.token, "r" * 40), {"author": li.author})
    return await pub.publish(req, conn, (context or Ctx(lambda: len(li.calls("post")))).context)


async def test_the_fake_refuses_what_linkedin_refuses(li: FakeLinkedIn) -> None:
    auth = {"Authorization": f"Bearer {li.token}"}
    body = {
        "author": li.author,
        "commentary": "hi",
        "visibility": "PUBLIC",
        "distribution": {},
        "lifecycleState": "PUBLISHED",
    }
    async with aiohttp.ClientSession() as s:
        old = {**auth, "LinkedIn-Version": "202301", "X-Restli-Protocol-Version": "2.0.0"}
        async with s.post(f"{li.base_url}/rest/posts", json=body, headers=old) as r:
            assert r.status == 426 and (await r.json())["code"] == "NONEXISTENT_VERSION"
        ok = {**old, "LinkedIn-Version": VERSION}
        async with s.post(f"{li.base_url}/rest/posts", json=body, headers=ok) as r:
            assert r.status == 201 and r.headers["x-restli-id"].startswith("urn:li:share:")
        async with s.post(f"{li.base_url}/rest/posts", json=body, headers=ok) as r:
            assert r.status == 422 and "duplicate of urn:li:share:" in (await r.json())["message"]
        bad = {**ok, "Authorization": "Bearer nope"}
        async with s.post(f"{li.base_url}/rest/posts", json=body, headers=bad) as r:
            assert r.status == 401 and (await r.json())["serviceErrorCode"] == 65600
        cut = {**body, "commentary": "before (after"}
        async with s.post(f"{li.base_url}/rest/posts", json=cut, headers=ok) as r:
            assert r.status == 201  # LinkedIn accepts it, and shows only "before "
    assert li.posts[-1].shown == "before "


@pytest.mark.parametrize("assets", [[], ["a/photo.jpg"], ["a/photo.jpg", "b/photo.png"]])
async def test_each_kind_is_one_post_with_its_images_stored_first(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost, assets: list[str]
) -> None:
    text = "Launch (beta) #herald @team [k] 50% off_*"
    ctx = Ctx(lambda: len(li.calls("post")))
    out = await publish(pub, li, text, [cdn.url(a) for a in assets], context=ctx)
    assert out.outcome is Outcome.PUBLISHED, out
    (post,) = li.posts_with("[k]")
    assert post.shown == text  # escaped: nothing cut
    assert out.provider_ids == {"post_urn": post.urn}
    assert len(post.images) == len(assets)
    if assets:
        assert ctx.remembered_children == [post.images] and ctx.stored_at == [0]
    sent = li.calls("post")[0].headers
    assert sent["LinkedIn-Version"] == VERSION and sent["X-Restli-Protocol-Version"] == "2.0.0"


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        ("bad-token", Outcome.AUTH_ERROR),
        ("revoked", Outcome.AUTH_ERROR),
        ("rate-limit", Outcome.RATE_LIMITED),
        ("media-rejected", Outcome.PERMANENT_ERROR),
        ("not-an-image", Outcome.PERMANENT_ERROR),
        ("sunset-version", Outcome.PERMANENT_ERROR),
    ],
)
async def test_error_classes_post_nothing(
    pub: LinkedInPublisher, li: FakeLinkedIn, cdn: MediaHost, setup: str, outcome: Outcome
) -> None:
    token, assets = None, [cdn.url("a/photo.jpg")]
    if setup == "bad-token":
        token = "AQV" + "x" * 40
    elif setup == "revoked":
        li.revoke(li.token)
    elif setup == "rate-limit":
        li.fail_next(
            "post", 429, {"status": 429, "message": "quota"}, headers={"Retry-After": "42"}
        )
    elif setup == "media-rejected":
        li.fail_next("init_image", 400, {"status": 400, "message": "owner is not allowed"})
    elif setup == "not-an-image":
        assets = [cdn.url("a/clip.mp4")]
    else:
        pub.version = "202301"
    out = await publish(pub, li, f"{setup} [e]", assets, token=token)
    assert out.outcome is outcome, out
    assert li.posts_with("[e]") == []
    if setup == "rate-limit":
        assert out.retry_after_seconds == 42.0
    if setup == "sunset-version":
        assert "HERALD_LINKEDIN_VERSION" in str(out.error_message)
    if setup == "bad-token":
        assert token not in str(out)


@pytest.mark.parametrize("fault", ["drop", "500"])
async def test_a_lost_answer_is_read_back_and_never_posted_twice(
    pub: LinkedInPublisher, li: FakeLinkedIn, fault: str
) -> None:
    if fault == "drop":
        li.drop_next("post", commit=True)
    else:
        li.fail_next("post", 500, {"status": 500, "message": "Internal"}, commit=True)
    ctx = Ctx(lambda: len(li.calls("post")))
    out = await publish(pub, li, "lost answer [d]", context=ctx)
    assert out.outcome is Outcome.PUBLISHED, out
    assert out.provider_response is not None and out.provider_response["already_posted"]
    again = await publish(pub, li, "lost answer [d]", context=ctx.next_attempt())
    assert again.outcome is Outcome.PUBLISHED
    assert len(li.posts_with("[d]")) == 1 and len(li.calls("post")) == 1


async def test_an_unknown_create_that_made_nothing_posts_on_the_next_attempt(
    pub: LinkedInPublisher, li: FakeLinkedIn
) -> None:
    li.drop_next("post")  # nothing made
    ctx = Ctx(lambda: len(li.calls("post")))
    first = await publish(pub, li, "not made [n]", context=ctx)
    assert first.outcome is Outcome.AMBIGUOUS
    li.fail_next("posts", 403, {"status": 403, "message": "no read scope", "serviceErrorCode": 100})
    blind = await publish(pub, li, "not made [n]", context=ctx.next_attempt())
    assert blind.outcome is Outcome.AMBIGUOUS  # could not read: never a blind create
    second = await publish(pub, li, "not made [n]", context=ctx.next_attempt())
    assert second.outcome is Outcome.PUBLISHED
    assert len(li.posts_with("[n]")) == 1


@pytest.mark.parametrize(
    ("status", "outcome"), [(401, Outcome.AUTH_ERROR), (429, Outcome.RATE_LIMITED)]
)
async def test_a_refusal_after_an_empty_read_in_doubt_keeps_the_doubt(
    pub: LinkedInPublisher, li: FakeLinkedIn, status: int, outcome: Outcome
) -> None:
    # The read found nothing, but the post an earlier attempt may have made can show late:
    # a wait (a new token, the quota) must leave the next attempt reading first.
    li.fail_next("post", status, {"status": status, "message": "refused"})
    ctx = Ctx(lambda: len(li.calls("post")), ambiguous_before=True)
    out = await publish(pub, li, "in doubt [w]", context=ctx)
    assert out.outcome is outcome and out.may_be_live, out
    assert li.calls("posts") and li.posts_with("[w]") == []


async def test_a_duplicate_answer_in_doubt_names_the_post_already_made(
    pub: LinkedInPublisher, li: FakeLinkedIn
) -> None:
    first = await publish(pub, li, "dup [u]")
    for n in range(25):  # the read of recent posts no longer reaches it
        assert (await publish(pub, li, f"later post {n}")).outcome is Outcome.PUBLISHED
    ctx = Ctx(lambda: len(li.calls("post")), ambiguous_before=True)
    again = await publish(pub, li, "dup [u]", context=ctx)
    assert again.outcome is Outcome.PUBLISHED, again
    assert first.provider_ids == again.provider_ids and len(li.posts_with("[u]")) == 1
    assert li.calls("post")[-1].status == 422


async def test_sign_in_and_refresh(li: FakeLinkedIn) -> None:
    s = settings(li)
    url = li_tokens.consent_url(s, state="st", redirect_uri="https://h/cb")
    assert url.startswith(f"{li.base_url}/oauth/v2/authorization?") and "state=st" in url
    issued = await li_tokens.exchange(
        s, code=li.issue_code("https://h/cb"), redirect_uri="https://h/cb"
    )
    assert dict(issued.metadata) == {"author": li.author, "refreshable": "true"}
    access, refresh = unpack(issued.access_token)
    assert access in li.grants and refresh
    renewed = await li_tokens.refresh(s, issued.access_token)
    assert unpack(renewed.access_token) != (access, refresh)
    assert unpack(renewed.access_token)[1] == refresh  # LinkedIn keeps the refresh token
    with pytest.raises(AuthLost):
        await li_tokens.exchange(s, code="made-up", redirect_uri="https://h/cb")
    with pytest.raises(AuthLost):
        await li_tokens.refresh(s, access)  # no refresh token held
    assert little("a_b") == "a\\_b"
