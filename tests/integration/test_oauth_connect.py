"""Connecting an Instagram account by OAuth sign-in, through the HTTP API against the fake
Graph server's strict OAuth endpoints: the state binds the tenant and is checked; the code
is exchanged short → long-lived; the token is stored encrypted with its expiry; a sign-in
again re-authorises a connection and releases its held jobs; nothing secret is answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.shared.accounts.oauth import StateSigner
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.stores import connections
from herald.shared.stores.tenants import create_api_key
from tests.conftest import Namespace
from tests.fakes.graph_server import FakeGraph
from tests.support.results_pipeline import job

pytestmark = pytest.mark.integration
APP_ID, APP_SECRET = "1234567890", "fake-app-secret-value-0123456789"
BASE = "https://herald.example.com"
CALLBACK = f"{BASE}/publishing/connections/oauth/instagram/callback"
ACCOUNT = "17841400000000077"
Client = TestClient[Any, Any]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as graph:
        graph.register_app(APP_ID, APP_SECRET, [CALLBACK])
        graph.consent_account = ACCOUNT
        yield graph


@pytest.fixture
async def api(
    ns: Namespace, fake: FakeGraph
) -> AsyncIterator[tuple[Runtime, TestClient[Any, Any]]]:
    root = fake.instagram_base_url.rsplit("/", 1)[0]
    rt = Runtime.build(
        ns.settings(
            meta_app_id=APP_ID,
            meta_app_secret=APP_SECRET,
            oauth_redirect_base_url=BASE + "/",
            instagram_authorize_url=f"{root}/oauth/authorize",
            instagram_code_exchange_url=f"{root}/oauth/access_token",
            instagram_login_graph_url=fake.instagram_base_url,
        )
    )
    await rt.open()
    try:
        async with TestClient(TestServer(create_app(rt, Health()))) as client:
            yield rt, client
    finally:
        await rt.close()


async def key_for(rt: Runtime, tenant: str) -> dict[str, str]:
    _, key = await create_api_key(rt.db, tenant_id=tenant, admin=False)
    return {"Authorization": f"Bearer {key}"}


async def consent(authorize_url: str) -> dict[str, list[str]]:
    """The browser at the platform's consent page: where it is sent back, and with what."""
    async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        back = urlsplit(r.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return parse_qs(back.query)


async def test_signing_in_creates_a_connection_with_a_long_lived_encrypted_token(
    api: tuple[Runtime, Client], fake: FakeGraph
) -> None:
    rt, client = api
    headers = await key_for(rt, "acme")
    r = await client.post(
        "/publishing/connections/oauth/instagram/start",
        json={"name": "shop", "metadata": {"shelf": "north"}},  # carried to the connection
        headers=headers,
    )
    assert r.status == 200, await r.text()
    authorize_url = (await r.json())["authorize_url"]
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["client_id"] == [APP_ID] and query["redirect_uri"] == [CALLBACK]
    assert APP_SECRET not in authorize_url
    # The GET form redirects the same way (for scripts and links).
    r = await client.get(
        "/publishing/connections/oauth/instagram/start",
        params={"name": "shop"},
        headers=headers,
        allow_redirects=False,
    )
    assert r.status == 302 and r.headers["Location"].startswith(authorize_url.split("?")[0])

    back = await consent(authorize_url)
    r = await client.get(
        "/publishing/connections/oauth/instagram/callback",
        params={"code": back["code"][0], "state": back["state"][0]},
        allow_redirects=False,
    )  # no API key: the browser comes back from Instagram
    assert r.status == 303, await r.text()
    location = r.headers["Location"]
    connection_id = location.split("connected=")[1]
    assert back["code"][0] not in location
    made = await rt.connections().get(ADMIN, connection_id)
    assert made["tenant_id"] == "acme" and made["name"] == "shop"
    assert made["metadata"] == {
        "instagramBusinessAccountId": ACCOUNT,
        "login": "instagram",
        "shelf": "north",
    }
    expires = made["token"]["expires_at"]
    assert expires is not None and made["token"]["refresh_at"] is not None
    loaded = await rt.connections().load_for_publish(connection_id)
    assert loaded is not None
    long_token = loaded.access_token  # the 60-day token, not the 1-hour one
    assert long_token in fake.tokens and fake.token_expires[long_token] - fake.now() > 59 * 86400
    [row] = await rt.db.fetch(
        "SELECT token_ciphertext FROM connections WHERE id = %s", (connection_id,)
    )
    assert long_token.encode() not in bytes(row["token_ciphertext"])
    assert [r.call for r in fake.requests] == [
        "oauth_authorize",
        "oauth_access_token",
        "ig_exchange_token",
        "me",
    ]
    # The code works once.
    r = await client.get(
        "/publishing/connections/oauth/instagram/callback",
        params={"code": back["code"][0], "state": back["state"][0]},
        allow_redirects=False,
    )
    assert r.status == 400 and long_token not in await r.text()


async def test_signing_in_again_reauthorises_the_connection_and_releases_its_jobs(
    api: tuple[Runtime, Client], fake: FakeGraph
) -> None:
    rt, client = api
    headers = await key_for(rt, "acme")
    fake.add_account(ACCOUNT, "IGAA" + "old" * 12, login="instagram")
    made = await rt.connections().create(
        ADMIN,
        {
            "platform": "instagram",
            "name": "shop",
            "tenant_id": "acme",
            "access_token": "IGAA" + "old" * 12,
            "metadata": {"instagramBusinessAccountId": ACCOUNT, "login": "instagram"},
        },
    )
    cid = made["id"]
    scheduled = await rt.jobs().schedule(
        ADMIN,
        {
            "platform": "instagram",
            "connection_id": cid,
            "media_asset_ids": ["https://cdn.example.com/a.jpg"],
            "tenant_id": "acme",
        },
    )
    job_id = scheduled.body["id"]
    # Held for a new token, as the results service leaves such a job.
    deadline = now_utc() + timedelta(hours=2)
    await rt.db.execute(
        "UPDATE jobs SET status = 'RETRY_SCHEDULED', next_attempt_at = %s,"
        ' publish_deadline = %s, last_error = \'{"code": "needs_reauth"}\' WHERE id = %s',
        (deadline, deadline, job_id),
    )
    assert await connections.mark_needs_reauth(
        rt.db, cid, bytes((await connections.refreshing(rt.db, cid) or {})["token_ciphertext"])
    )
    r = await client.post(
        "/publishing/connections/oauth/instagram/start",
        json={"connection_id": cid},
        headers=headers,
    )
    assert r.status == 200, await r.text()
    back = await consent((await r.json())["authorize_url"])
    r = await client.get(
        "/publishing/connections/oauth/instagram/callback",
        params={"code": back["code"][0], "state": back["state"][0]},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == f"/?connected={cid}"
    again = await rt.connections().get(ADMIN, cid)
    assert again["status"] == "active" and again["token"]["expires_at"] is not None
    row = await job(rt, job_id)
    assert row["next_attempt_at"] <= now_utc()  # released: due now


async def test_a_sign_in_is_refused_when_its_state_or_consent_is_not_right(
    api: tuple[Runtime, Client], fake: FakeGraph, ns: Namespace
) -> None:
    rt, client = api
    headers = await key_for(rt, "acme")
    callback = "/publishing/connections/oauth/instagram/callback"

    async def started() -> str:
        r = await client.post(
            "/publishing/connections/oauth/instagram/start", json={}, headers=headers
        )
        assert r.status == 200, await r.text()
        return str((await r.json())["authorize_url"])

    back = await consent(await started())
    code, state = back["code"][0], back["state"][0]
    body, mac = state.split(".")
    forged = StateSigner("another herald's key").sign({"tenant": "evil"})
    for bad in (state + "x", f"{body[:-2]}xx.{mac}", forged, "", "a" * 5000):
        r = await client.get(callback, params={"code": code, "state": bad}, allow_redirects=False)
        assert r.status == 400, (bad[:20], await r.text())
        assert (await r.json())["error"]["code"] == "oauth_refused"
    expired = StateSigner(rt.settings.secret_key_ring()).sign(
        {"platform": "instagram", "tenant": "acme", "exp": 1}
    )
    r = await client.get(callback, params={"code": code, "state": expired})
    assert r.status == 400 and "expired" in (await r.json())["error"]["message"]
    # The person refuses on Instagram's page.
    fake.deny_next_consent = True
    denied = await consent(await started())
    assert denied["error"] == ["access_denied"] and "code" not in denied
    r = await client.get(
        callback,
        params={k: v[0] for k, v in denied.items()},
        allow_redirects=False,
    )
    assert r.status == 400 and "not granted" in (await r.json())["error"]["message"]
    # No key, another platform, an unknown one.
    r = await client.post("/publishing/connections/oauth/instagram/start", json={})
    assert r.status == 401
    r = await client.post("/publishing/connections/oauth/sandbox/start", json={}, headers=headers)
    assert r.status == 422
    r = await client.post("/publishing/connections/oauth/myspace/start", json={}, headers=headers)
    assert r.status == 422
    # Bad input at the start and at the callback: a clear 4xx, never echoed, never a 500.
    start = "/publishing/connections/oauth/instagram/start"
    for body in (
        {"name": "a\x00b"},
        {"name": "n" * 201},
        {"name": 7},
        {"nme": "typo"},
        {"metadata": {"k": "v" * 129}},
        {"metadata": {str(i): "v" for i in range(9)}},
        {"metadata": ["not", "an", "object"]},
    ):
        r = await client.post(start, json=body, headers=headers)
        assert r.status == 422, (body, await r.text())
    r = await client.post(start, json={"connection_id": "x" * 10_000}, headers=headers)
    assert r.status == 404 and "x" * 100 not in await r.text()
    r = await client.get(callback, params={"code": "c" * 100_000, "state": state})
    assert r.status in (400, 414, 431)
    r = await client.get(callback, params={"error": "<script>" * 50, "state": state})
    assert r.status == 400 and "<script>" not in await r.text()
    # Nothing was stored by any of these.
    assert (await rt.connections().list_connections(ADMIN))["items"] == []


async def test_without_app_credentials_the_sign_in_is_not_offered(
    rt: Runtime, client: TestClient[Any, Any]
) -> None:
    _, key = await create_api_key(rt.db, tenant_id="acme", admin=False)
    r = await client.post(
        "/publishing/connections/oauth/instagram/start",
        json={},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status == 409 and "HERALD_META_APP_ID" in (await r.json())["error"]["message"]
