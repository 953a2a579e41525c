"""What the Instagram publisher puts on the wire: the token in the Authorization header only,
appsecret_proof when the app has a secret, and the host the connection's login names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.outcomes import Outcome
from herald.shared.domain.requests import Connection
from herald.shared.infra.settings import Settings
from tests.fakes.graph_server import DEFAULT_TOKEN, INSTAGRAM, FakeGraph
from tests.unit.conftest import instagram
from tests.unit.test_instagram_publisher import (
    IMG,
    Ctx,
    assert_published_once,
    connection,
    publish,
    request,
)


async def test_the_token_travels_in_the_authorization_header_only(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.commit_then_drop("media_publish")  # reads after a lost answer, too
    out = await publish(publisher, fake, request([IMG]))
    assert_published_once(out, fake)
    calls = {r.call for r in fake.requests}
    assert {"create_container", "media_publish", "container_status", "media_list"} <= calls
    assert all(r.token_via == "header" for r in fake.requests)
    assert all(DEFAULT_TOKEN not in str(r.params) for r in fake.requests)


@pytest.fixture
async def secret_fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(app_secret="app-s3cret") as graph:
        yield graph


async def test_appsecret_proof_goes_with_every_call_when_the_app_has_a_secret(
    secret_fake: FakeGraph, throttle: Throttle
) -> None:
    pub = instagram(secret_fake, throttle, app_secret="app-s3cret")
    try:
        out = await publish(pub, secret_fake, request([IMG]))
        assert_published_once(out, secret_fake)
        assert all("appsecret_proof" in r.params for r in secret_fake.requests)
    finally:
        await pub.close()
    without = instagram(secret_fake, throttle)
    try:
        refused = await publish(without, secret_fake, request([IMG]))
        assert refused.outcome is Outcome.PERMANENT_ERROR and "appsecret_proof" in str(refused)
    finally:
        await without.close()


async def test_the_connections_login_picks_the_host(
    publisher: InstagramPublisher, fake: FakeGraph
) -> None:
    fake.add_account("17841400000000009", "IGAAinstagramLOGINtoken", login=INSTAGRAM)
    ig = Connection(
        "c-ig",
        "t",
        "instagram",
        "ig",
        "active",
        {"instagramBusinessAccountId": "17841400000000009", "login": "instagram"},
        "IGAAinstagramLOGINtoken",
    )
    out = await publisher.publish(request([IMG]), ig, Ctx(fake).context)
    assert out.outcome is Outcome.PUBLISHED and fake.posts["17841400000000009"]
    assert {r.login for r in fake.requests} == {"instagram"}
    fb = await publish(publisher, fake, request([IMG], caption="fb"))
    assert fb.outcome is Outcome.PUBLISHED and fake.requests[-1].login == "facebook"
    assert connection().metadata.get("login") is None  # facebook when absent


def test_the_app_secret_is_a_masked_setting() -> None:
    settings = Settings(instagram_app_secret="app-s3cret")
    assert set(str(settings.masked()["instagram_app_secret"])) == {"*"}
    assert "app-s3cret" not in repr(settings) and "app-s3cret" not in str(settings.masked())
    assert settings.instagram_login_graph_url.startswith("https://graph.instagram.com/")
