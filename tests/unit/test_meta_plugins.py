"""The Facebook Pages and Threads plugins: their media plans, their declarations as the
registry sees them, and their tokens against the fakes (OAuth sign-in, refresh)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from herald.platforms import AuthLost, PlatformEnv
from herald.services.publisher.platforms.facebook import media as fb_media
from herald.services.publisher.platforms.facebook.plugin import FacebookPages
from herald.services.publisher.platforms.threads import media as th_media
from herald.services.publisher.platforms.threads.plugin import Threads
from herald.shared.domain.requests import Connection
from herald.shared.platforms.registry import platforms
from tests.fakes import facebook_state, threads_state
from tests.fakes.facebook_server import FakeFacebook
from tests.fakes.threads_server import FakeThreads

IMG, VID, PAGE = "https://c.example/a.jpg", "https://c.example/v.mp4", "https://e.example/post"


@pytest.mark.parametrize(
    ("assets", "media_type", "kind"),
    [
        ([IMG], None, fb_media.PHOTOS),
        ([IMG, IMG], None, fb_media.PHOTOS),
        ([IMG], "IMAGE", fb_media.PHOTOS),
        ([VID], None, fb_media.VIDEO),
        ([VID], "REELS", fb_media.REEL),
        ([PAGE], None, fb_media.LINK),
        ([PAGE], "LINK", fb_media.LINK),
    ],
)
def test_facebook_plans(assets: list[str], media_type: str | None, kind: str) -> None:
    assert fb_media.plan_post(assets, media_type).kind == kind


@pytest.mark.parametrize(
    ("assets", "media_type"),
    [([IMG, VID], "CAROUSEL"), ([IMG], "REELS"), ([VID, VID], "VIDEO"), ([IMG], "STORIES")],
)
def test_facebook_refuses(assets: list[str], media_type: str) -> None:
    with pytest.raises(fb_media.PlanError):
        fb_media.plan_post(assets, media_type)


@pytest.mark.parametrize(
    ("assets", "media_type", "kind", "params"),
    [
        ([], "TEXT", "TEXT", {"media_type": "TEXT", "text": "hi"}),
        ([PAGE], None, "TEXT", {"link_attachment": PAGE}),
        ([IMG], None, "IMAGE", {"image_url": IMG}),
        ([VID], None, "VIDEO", {"video_url": VID}),
        ([IMG, VID], None, "CAROUSEL", {"media_type": "CAROUSEL"}),
    ],
)
def test_threads_plans(
    assets: list[str], media_type: str | None, kind: str, params: dict[str, str]
) -> None:
    plan = th_media.plan_post(assets, "hi", media_type)
    assert plan.kind == kind and params.items() <= plan.container.items()
    if kind == "CAROUSEL":
        assert [c["is_carousel_item"] for c in plan.children] == ["true", "true"]


def test_threads_text_rules() -> None:
    assert th_media.text_length("🎉" * 125) == 500
    th_media.plan_post([], "🎉" * 125, "TEXT")
    for text, media_type in (("🎉" * 126, "TEXT"), ("", "TEXT"), ("x", "VIDEO")):
        with pytest.raises(th_media.PlanError):
            th_media.plan_post([IMG] if media_type == "VIDEO" else [], text, media_type)


def test_the_registry_lists_both_with_their_rules() -> None:
    found = platforms()
    assert isinstance(found["facebook"], FacebookPages) and isinstance(found["threads"], Threads)
    fb, th = found["facebook"].describe(), found["threads"].describe()
    assert [k["media_type"] for k in fb["media_kinds"]] == [
        "IMAGE", "CAROUSEL", "LINK", "VIDEO", "REELS"
    ]  # fmt: skip
    assert th["caption"]["chars"] == 500 and th["token_refresh"] is True
    assert found["threads"].metadata_errors({"threadsUserId": "12a"})
    assert not found["facebook"].metadata_errors({"pageId": "104000000000001"})


def _threads_env(th: FakeThreads) -> PlatformEnv:
    settings = SimpleNamespace(
        threads_graph_url=th.base_url,
        threads_app_id=threads_state.APP_ID,
        threads_app_secret=SecretStr(threads_state.APP_SECRET),
        threads_authorize_url="https://threads.net/oauth/authorize",
    )
    return PlatformEnv(settings=settings)


def _connection(token: str, **metadata: Any) -> Connection:
    return Connection("c", "t", "threads", "th", "active", metadata, access_token=token)


async def test_threads_sign_in_then_refresh_before_expiry() -> None:
    async with FakeThreads() as th:
        env, plugin = _threads_env(th), Threads()
        url = plugin.consent_url(env, state="s-1", redirect_uri="https://h.test/cb")
        assert "state=s-1" in url and "threads_content_publish" in url
        issued = await plugin.exchange_code(
            env, code=th.authorize(), redirect_uri="https://h.test/cb", metadata={}
        )
        assert issued.metadata == {"threadsUserId": th.user}
        assert issued.expires_at is not None
        assert issued.expires_at - datetime.now(UTC) > timedelta(days=59)
        assert th.calls("exchange")[0].token_via == "header"  # never in the URL
        with pytest.raises(AuthLost):  # younger than a day: Threads refuses
            await plugin.refresh_token(env, _connection(issued.access_token))
        th.advance(86_401)
        fresh = await plugin.refresh_token(env, _connection(issued.access_token))
        assert fresh.access_token != issued.access_token and fresh.expires_at is not None
        th.revoke(fresh.access_token)
        with pytest.raises(AuthLost) as lost:
            await plugin.refresh_token(env, _connection(fresh.access_token))
        assert fresh.access_token not in str(lost.value)


async def test_threads_refresh_on_a_server_error_is_transient() -> None:
    async with FakeThreads() as th:
        th.fail_next("refresh", code=2)
        th.advance(86_401)
        with pytest.raises(Exception) as failed:
            await Threads().refresh_token(_threads_env(th), _connection(th.token))
        assert not isinstance(failed.value, AuthLost)


async def test_facebook_sign_in_gives_a_page_token_without_expiry() -> None:
    async with FakeFacebook() as fb:
        settings = SimpleNamespace(
            facebook_graph_url=fb.base_url,
            facebook_authorize_url=f"{fb.base_url}/dialog/oauth",
            meta_app_id=facebook_state.APP_ID,
            meta_app_secret=SecretStr(facebook_state.APP_SECRET),
        )
        env, plugin = PlatformEnv(settings=settings), FacebookPages()
        assert "/v25.0/dialog/oauth?" in plugin.consent_url(
            env, state="s", redirect_uri="https://h/cb"
        )
        cb = "https://h/cb"
        issued = await plugin.exchange_code(env, code=fb.authorize(), redirect_uri=cb, metadata={})
        assert issued.expires_at is None and issued.metadata["pageId"] == fb.page
        assert fb.tokens[issued.access_token].kind == "page"
        with pytest.raises(AuthLost):  # a code works once
            await plugin.exchange_code(env, code="code-x", redirect_uri=cb, metadata={})
        asked = {"pageId": fb.page}  # the sign-in was started for this Page
        issued = await plugin.exchange_code(
            env, code=fb.authorize(), redirect_uri=cb, metadata=asked
        )
        assert issued.metadata["pageId"] == fb.page
        with pytest.raises(AuthLost, match="the Page 999"):  # not one of the user's Pages
            await plugin.exchange_code(
                env, code=fb.authorize(), redirect_uri=cb, metadata={"pageId": "999"}
            )
