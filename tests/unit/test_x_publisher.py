"""XPublisher against the fake X API and a media host on loopback: text, images and a
chunked video, the weighted 280-character limit, each error class (a rate limit waits for
``x-rate-limit-reset``), never a second post after a lost answer (the account's posts read
before any retry), and OAuth 2 with PKCE and rotating refresh tokens. The fake's own
strictness is checked first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from pydantic import SecretStr

from herald.platforms import AuthLost, Outcome, PublishOutcome
from herald.services.publisher.platforms.rest.oauth2 import pack, unpack
from herald.services.publisher.platforms.x import XPublisher
from herald.services.publisher.platforms.x import tokens as x_tokens
from herald.services.publisher.platforms.x.text import weighted_length
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.platforms.registry import platforms
from tests.fakes.attempts import Ctx, connection, request
from tests.fakes.media_host import MediaHost
from tests.fakes.x_server import DUPLICATE, RATE_LIMITED, FakeX


@pytest.fixture
async def x(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeX]:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    async with FakeX() as fake:
        yield fake


@pytest.fixture
async def cdn() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:
        yield host


@pytest.fixture
async def pub(x: FakeX) -> AsyncIterator[XPublisher]:
    publisher = XPublisher(x.base_url)
    yield publisher
    await publisher.close()


def settings(x: FakeX) -> Any:
    return SimpleNamespace(
        x_api_url=x.base_url,
        x_authorize_url="https://x.example/i/oauth2/authorize",
        x_client_id=x.client_id,
        x_client_secret=SecretStr(x.client_secret),
    )


async def publish(
    pub: XPublisher,
    x: FakeX,
    text: str,
    assets: list[str] | None = None,
    kind: str | None = None,
    *,
    context: Ctx | None = None,
    token: str | None = None,
) -> PublishOutcome:
    kind = kind or ("IMAGE" if assets else "TEXT")
    req = request("x", assets or [], caption=text, media_type=kind)
    conn = connection("x", pack(token or x.token, x.refresh), {"userId": x.user_id})
    return await pub.publish(req, conn, (context or Ctx(lambda: len(x.calls("tweet")))).context)


def test_the_weighted_count_is_the_registrys() -> None:
    assert weighted_length("a" * 280) == 280
    assert weighted_length("日" * 141) == 282  # CJK counts 2
    assert weighted_length("👨‍👩‍👧 ok") == 5  # one ZWJ sequence counts 2
    assert weighted_length("go https://example.com/" + "p" * 200) == 26  # a URL counts 23
    assert platforms()["x"].caption_length("日" * 141) == 282


async def test_the_fake_refuses_what_x_refuses(x: FakeX) -> None:
    auth = {"Authorization": f"Bearer {x.token}"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{x.base_url}/2/tweets", json={"text": "hi"}, headers=auth) as r:
            assert r.status == 201 and "id" in (await r.json())["data"]
            assert int(r.headers["x-rate-limit-remaining"]) < x.window_limit
        async with s.post(f"{x.base_url}/2/tweets", json={"text": "hi"}, headers=auth) as r:
            assert r.status == 403 and (await r.json()) == DUPLICATE
        async with s.post(f"{x.base_url}/2/tweets", json={"text": "é" * 281}, headers=auth) as r:
            assert r.status == 400
        media = {"text": "m", "media": {"media_ids": ["123"]}}
        async with s.post(f"{x.base_url}/2/tweets", json=media, headers=auth) as r:
            assert r.status == 400
        x.expire(x.token)
        async with s.post(f"{x.base_url}/2/tweets", json={"text": "late"}, headers=auth) as r:
            assert r.status == 401
    assert len(x.tweets) == 1


@pytest.mark.parametrize(
    ("assets", "kind"),
    [([], "TEXT"), (["a/photo.jpg", "b/photo.png"], "IMAGE"), (["a/clip.mp4"], "VIDEO")],
)
async def test_each_kind_is_one_post_with_its_media_stored_first(
    pub: XPublisher, x: FakeX, cdn: MediaHost, assets: list[str], kind: str
) -> None:
    ctx = Ctx(lambda: len(x.calls("tweet")))
    out = await publish(
        pub, x, f"a {kind} post [k]", [cdn.url(a) for a in assets], kind, context=ctx
    )
    assert out.outcome is Outcome.PUBLISHED, out
    (tweet,) = x.posts_with("[k]")
    assert out.provider_ids == {"post_id": tweet.id}
    assert len(tweet.media) == len(assets)
    if assets:
        assert ctx.remembered_children == [tweet.media] and ctx.stored_at == [0]
    if kind == "VIDEO":
        assert [len(x.calls(c)) for c in ("initialize", "append", "finalize")] == [1, 1, 1]
        assert x.calls("status")  # polled until succeeded


@pytest.mark.parametrize(
    ("setup", "outcome"),
    [
        ("expired-token", Outcome.AUTH_ERROR),
        ("rate-limit", Outcome.RATE_LIMITED),
        ("media-rejected", Outcome.PERMANENT_ERROR),
        ("too-long", Outcome.PERMANENT_ERROR),
        ("media-503", Outcome.RETRYABLE_ERROR),
    ],
)
async def test_error_classes_post_nothing(
    pub: XPublisher, x: FakeX, cdn: MediaHost, setup: str, outcome: Outcome
) -> None:
    text, assets = f"{setup} [e]", [cdn.url("a/photo.jpg")]
    if setup == "expired-token":
        x.expire(x.token)
    elif setup == "rate-limit":
        x.fail_next("tweet", 429, RATE_LIMITED, headers=x.limit_headers(0, reset_in=120))
    elif setup == "media-rejected":
        x.fail_next("upload", 400, {"title": "Bad", "detail": "unsupported", "status": 400})
    elif setup == "too-long":
        text = "日" * 141
    else:
        x.fail_next("upload", 503, {"title": "Service Unavailable", "status": 503})
    out = await publish(pub, x, text, assets)
    assert out.outcome is outcome, out
    assert x.posts_with("[e]") == [] and len(x.tweets) == 0
    if setup == "rate-limit":
        assert out.retry_after_seconds is not None and 100 <= out.retry_after_seconds <= 121


@pytest.mark.parametrize("fault", ["drop", "503"])
async def test_a_lost_answer_is_read_back_and_never_posted_twice(
    pub: XPublisher, x: FakeX, fault: str
) -> None:
    if fault == "drop":
        x.drop_next("tweet", commit=True)
    else:
        x.fail_next("tweet", 503, {"title": "Service Unavailable", "status": 503}, commit=True)
    ctx = Ctx(lambda: len(x.calls("tweet")))
    out = await publish(pub, x, "lost answer [d] https://example.com/a", context=ctx)
    assert out.outcome is Outcome.PUBLISHED, out
    again = await publish(
        pub, x, "lost answer [d] https://example.com/a", context=ctx.next_attempt()
    )
    assert again.outcome is Outcome.PUBLISHED and again.provider_ids == out.provider_ids
    assert len(x.posts_with("[d]")) == 1 and len(x.calls("tweet")) == 1


async def test_an_unknown_create_that_made_nothing_posts_after_a_read(
    pub: XPublisher, x: FakeX
) -> None:
    x.drop_next("tweet")
    ctx = Ctx(lambda: len(x.calls("tweet")))
    assert (await publish(pub, x, "not made [n]", context=ctx)).outcome is Outcome.AMBIGUOUS
    x.fail_next("timeline", 503, {"title": "Service Unavailable", "status": 503})
    blind = await publish(pub, x, "not made [n]", context=ctx.next_attempt())
    assert blind.outcome is Outcome.AMBIGUOUS  # no read, no create
    assert len(x.calls("tweet")) == 1
    done = await publish(pub, x, "not made [n]", context=ctx.next_attempt())
    assert done.outcome is Outcome.PUBLISHED and len(x.posts_with("[n]")) == 1


async def test_sign_in_with_pkce_and_rotating_refresh(x: FakeX) -> None:
    s = settings(x)
    url = x_tokens.consent_url(s, state="st", redirect_uri="https://h/cb")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and "offline.access" in query["scope"][0]
    code = x.issue_code("https://h/cb", query["code_challenge"][0])
    issued = await x_tokens.exchange(s, code=code, redirect_uri="https://h/cb")
    assert dict(issued.metadata) == {"userId": x.user_id, "username": x.username}
    first = issued.access_token
    second = await x_tokens.refresh(s, first)
    assert unpack(second.access_token)[1] != unpack(first)[1]  # rotated
    third = await x_tokens.refresh(s, second.access_token)
    with pytest.raises(AuthLost):
        await x_tokens.refresh(s, first)  # a used refresh token: the family is revoked
    assert x.grants[unpack(third.access_token)[0]].revoked
    with pytest.raises(AuthLost):
        await x_tokens.exchange(s, code="made-up", redirect_uri="https://h/cb")
    wrong = x.issue_code("https://h/cb", "not-the-challenge")
    with pytest.raises(AuthLost):
        await x_tokens.exchange(s, code=wrong, redirect_uri="https://h/cb")
