"""Connecting a LinkedIn member or an X account by OAuth sign-in, through the HTTP API
against the strict fakes, with only that platform's client id and secret configured (no
Meta app): the consent URL carries the state (and for X the PKCE challenge); the fake
approves; the callback creates the connection with the account's id and the token
encrypted at rest, in no answer and no log line; a job on it publishes through the fake
with the signed-in token; the token keeper refreshes the short-lived token ahead of its
expiry with the refresh token, and the next post uses the new one; a refresh the platform
refuses leaves the connection `needs_reauth`. A missing client setting is a 409 naming it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.services.publisher.platforms.linkedin import LinkedInPublisher
from herald.services.publisher.platforms.rest.oauth2 import pack, unpack
from herald.services.publisher.platforms.x import XPublisher
from herald.shared.accounts.tokens import TokenKeeper
from herald.shared.domain.outcomes import Outcome
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.stores.tenants import create_api_key
from tests.conftest import Namespace
from tests.fakes.attempts import Ctx, request
from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.x_server import FakeX
from tests.integration.publisher_harness import Logs

pytestmark = pytest.mark.integration
BASE = "https://herald.example.com"
Client = TestClient[Any, Any]
Fake = FakeLinkedIn | FakeX


def callback(platform: str) -> str:
    return f"{BASE}/publishing/connections/oauth/{platform}/callback"


@pytest.fixture(autouse=True)
def local_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes listen on plain HTTP on 127.0.0.1: allow-listed for outbound calls."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")


@dataclass
class Signin:
    platform: str
    fake: Any
    settings: dict[str, Any]  # the platform's own settings only
    post_call: str  # the fake's call that posts

    def metadata(self) -> dict[str, str]:
        if isinstance(self.fake, FakeLinkedIn):
            return {"author": self.fake.author, "refreshable": "true"}
        return {"userId": self.fake.user_id, "username": self.fake.username}

    def publisher(self, rt: Runtime) -> Any:
        if isinstance(self.fake, FakeLinkedIn):
            return LinkedInPublisher(self.fake.base_url, rt.settings.linkedin_version)
        return XPublisher(self.fake.base_url)

    async def refuse_refresh(self, refresh_token: str) -> None:
        """The platform stops honouring the refresh token: LinkedIn, the member revoked the
        app (400 invalid_grant); X, the single-use token was spent elsewhere (400, and its
        whole family revoked)."""
        if isinstance(self.fake, FakeLinkedIn):
            self.fake.revoke(self.fake.refresh_tokens[refresh_token])
            return
        pair = f"{self.fake.client_id}:{self.fake.client_secret}".encode()
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.fake.base_url}/2/oauth2/token",
                data=form,
                headers={"Authorization": f"Basic {base64.b64encode(pair).decode()}"},
            ) as r,
        ):
            assert r.status == 200, await r.text()


@pytest.fixture(params=["linkedin", "x"])
async def signin(request: pytest.FixtureRequest) -> AsyncIterator[Signin]:
    platform = str(request.param)
    if platform == "linkedin":
        async with FakeLinkedIn(client_id="li-app", client_secret="li-secret-0123456789") as li:
            li.token_life = 3 * 86400  # refreshed a week ahead: due at once
            li.redirect_uris.add(callback(platform))
            yield Signin(
                platform,
                li,
                {
                    "linkedin_client_id": li.client_id,
                    "linkedin_client_secret": li.client_secret,
                    "linkedin_oauth_url": f"{li.base_url}/oauth/v2",
                    "linkedin_api_url": li.base_url,
                },
                "post",
            )
        return
    async with FakeX(client_id="x-app", client_secret="x-secret-0123456789") as x:
        x.token_life = 1200  # refreshed half an hour ahead: due at once
        x.redirect_uris.add(callback(platform))
        yield Signin(
            platform,
            x,
            {
                "x_client_id": x.client_id,
                "x_client_secret": x.client_secret,
                "x_authorize_url": f"{x.base_url}/i/oauth2/authorize",
                "x_api_url": x.base_url,
            },
            "tweet",
        )


@asynccontextmanager
async def open_api(ns: Namespace, **settings: Any) -> AsyncIterator[tuple[Runtime, Client]]:
    """The API with these settings and no Meta app."""
    rt = Runtime.build(ns.settings(meta_app_id=None, meta_app_secret=None, **settings))
    await rt.open()
    try:
        async with TestClient(TestServer(create_app(rt, Health()))) as client:
            yield rt, client
    finally:
        await rt.close()


@pytest.fixture
async def api(ns: Namespace, signin: Signin) -> AsyncIterator[tuple[Runtime, Client]]:
    async with open_api(ns, oauth_redirect_base_url=BASE + "/", **signin.settings) as opened:
        yield opened


async def key_for(rt: Runtime) -> dict[str, str]:
    _, key = await create_api_key(rt.db, tenant_id="acme", admin=False)
    return {"Authorization": f"Bearer {key}"}


async def consent(authorize_url: str, platform: str) -> dict[str, str]:
    """The browser at the platform's consent page, approving: where it is sent back."""
    async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        back = urlsplit(r.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == callback(platform)
    return {k: v[0] for k, v in parse_qs(back.query).items()}


async def publish(rt: Runtime, s: Signin, cid: str, marker: str) -> str:
    """A job scheduled on the connection, published through the fake: the token sent."""
    caption = f"hello from a sign-in {marker}"
    scheduled = await rt.jobs().schedule(
        ADMIN,
        {
            "platform": s.platform,
            "connection_id": cid,
            "caption": caption,
            "media_type": "TEXT",
            "media_asset_ids": [],
            "tenant_id": "acme",
        },
    )
    loaded = await rt.connections().load_for_publish(cid)
    assert loaded is not None
    publisher = s.publisher(rt)
    try:
        req = replace(
            request(s.platform, [], caption=caption, media_type="TEXT"),
            job_id=scheduled.body["id"],
            connection_id=cid,
        )
        out = await publisher.publish(
            req, loaded, Ctx(lambda: len(s.fake.calls(s.post_call))).context
        )
    finally:
        await publisher.close()
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(s.fake.posts_with(marker)) == 1
    sent = s.fake.calls(s.post_call)[-1].headers["Authorization"]
    return str(sent.removeprefix("Bearer "))


async def stored(rt: Runtime, cid: str) -> tuple[str, bytes]:
    loaded = await rt.connections().load_for_publish(cid)
    assert loaded is not None
    [row] = await rt.db.fetch("SELECT token_ciphertext FROM connections WHERE id = %s", (cid,))
    return loaded.access_token, bytes(row["token_ciphertext"])


async def test_sign_in_publish_refresh_and_a_refused_refresh(
    api: tuple[Runtime, Client], signin: Signin, logs: Logs
) -> None:
    rt, client, s = *api, signin
    base = f"/publishing/connections/oauth/{s.platform}"
    r = await client.post(f"{base}/start", json={"name": "mine"}, headers=await key_for(rt))
    assert r.status == 200, await r.text()
    authorize_url = str((await r.json())["authorize_url"])
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["client_id"] == [s.fake.client_id]
    assert query["redirect_uri"] == [callback(s.platform)] and query["state"][0]
    if s.platform == "x":  # PKCE: the challenge here, the verifier only on the token call
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert "offline.access" in query["scope"][0].split()
    assert s.fake.client_secret not in authorize_url

    back = await consent(authorize_url, s.platform)
    r = await client.get(f"{base}/callback", params=back, allow_redirects=False)  # no API key
    assert r.status == 303, await r.text()
    cid = r.headers["Location"].split("connected=")[1]
    made = await rt.connections().get(ADMIN, cid)
    assert (made["tenant_id"], made["name"], made["status"]) == ("acme", "mine", "active")
    assert made["metadata"] == s.metadata()
    assert made["token"]["expires_at"] is not None
    signed_in, blob = await stored(rt, cid)
    access, refresh = unpack(signed_in)
    assert access in s.fake.grants and refresh is not None
    assert access.encode() not in blob and refresh.encode() not in blob  # encrypted at rest
    assert [c.call for c in s.fake.requests] == [
        "authorize",
        "token",
        "userinfo" if s.platform == "linkedin" else "me",
    ]

    assert await publish(rt, s, cid, "[signed-in]") == access

    # The token keeper: the short-lived token is due; refreshed with the refresh token.
    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    assert await keeper.refresh_due() == 1
    refreshed, _ = await stored(rt, cid)
    new_access, new_refresh = unpack(refreshed)
    assert new_access != access and new_access in s.fake.grants
    assert s.fake.calls("token")[-1].body["grant_type"] == "refresh_token"
    assert (await rt.connections().get(ADMIN, cid))["status"] == "active"
    assert await publish(rt, s, cid, "[refreshed]") == new_access

    # Nothing secret in an answer or a log line (but the test server's access log).
    listed = await (await client.get("/publishing/connections", headers=await key_for(rt))).text()
    logged = "\n".join(line for line in logs.lines if "aiohttp.access" not in line)
    secrets = (access, refresh, new_access, str(new_refresh), back["code"], s.fake.client_secret)
    for text in (listed, logged, r.headers["Location"]):
        assert all(secret not in text for secret in secrets)
    assert "token refreshed" in logged

    # The platform refuses the next refresh: the connection needs a new sign-in.
    await s.refuse_refresh(str(new_refresh))
    assert await keeper.refresh_due() == 0
    after = await rt.connections().get(ADMIN, cid)
    assert after["status"] == "needs_reauth"
    assert s.fake.calls("token")[-1].status == 400


async def test_a_consent_the_person_declines_creates_nothing(
    api: tuple[Runtime, Client], signin: Signin
) -> None:
    rt, client, s = *api, signin
    base = f"/publishing/connections/oauth/{s.platform}"
    r = await client.post(f"{base}/start", json={}, headers=await key_for(rt))
    assert r.status == 200, await r.text()
    s.fake.deny_next = True
    back = await consent(str((await r.json())["authorize_url"]), s.platform)
    assert "code" not in back and back["error"]
    r = await client.get(f"{base}/callback", params=back, allow_redirects=False)
    assert r.status == 400 and (await r.json())["error"]["code"] == "oauth_refused"
    assert (await rt.connections().list_connections(ADMIN))["items"] == []
    assert s.fake.calls("token") == []


async def test_a_missing_client_setting_is_named(ns: Namespace, signin: Signin) -> None:
    """Each platform needs its own client id and secret, and nothing else but the base URL."""
    secret_name = next(k for k in signin.settings if k.endswith("_client_secret"))
    partial = {k: v for k, v in signin.settings.items() if k != secret_name}
    async with open_api(ns, oauth_redirect_base_url=BASE, **partial) as (rt, client):
        base = f"/publishing/connections/oauth/{signin.platform}"
        r = await client.post(f"{base}/start", json={}, headers=await key_for(rt))
        assert r.status == 409, await r.text()
        error = (await r.json())["error"]
        assert error["code"] == "oauth_not_configured"
        assert f"HERALD_{secret_name.upper()}" in error["message"]
        assert "META" not in error["message"]
        r = await client.get(f"{base}/callback", params={"code": "c", "state": "s"})
        assert r.status == 409
    assert signin.fake.requests == []


async def test_a_token_pasted_without_a_refresh_token_is_used_not_refreshed(
    api: tuple[Runtime, Client], signin: Signin
) -> None:
    """An access token given with no refresh token cannot be refreshed: the token keeper
    leaves it alone (it is used until the platform refuses it) instead of trying, being
    refused and holding the connection's jobs under `needs_reauth` while the token works."""
    rt, s = api[0], signin
    access, refresh = s.fake.grant()
    body = {"platform": s.platform, "name": "pasted", "metadata": s.metadata(), "tenant_id": "acme"}
    bare = await rt.connections().create(ADMIN, {**body, "access_token": access})
    packed = await rt.connections().create(ADMIN, {**body, "access_token": pack(access, refresh)})
    assert bare["token"]["refresh_at"] is None
    assert packed["token"]["refresh_at"] is not None  # the same platform, with a refresh token
    await rt.db.execute(  # as a row stored before this rule: due now
        "UPDATE connections SET token_refresh_at = now() - interval '1 s' WHERE id = %s",
        (bare["id"],),
    )
    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    [row] = await rt.db.fetch(
        "SELECT token_refresh_at FROM connections WHERE id = %s", (bare["id"],)
    )
    assert row["token_refresh_at"] is not None
    assert await keeper.refresh_one(str(bare["id"])) is None
    after = await rt.connections().get(ADMIN, str(bare["id"]))
    assert after["status"] == "active" and after["token"]["refresh_at"] is None
    assert s.fake.calls("token") == []
    assert await publish(rt, s, str(bare["id"]), "[pasted]") == access
