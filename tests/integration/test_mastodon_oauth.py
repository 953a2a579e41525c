"""Connecting a Mastodon account by signing in on its instance, through the HTTP API against
the fake instance's strict OAuth: Herald registers its app on the instance once (the secret
encrypted, never answered or logged) and reuses it; the connection gets the instance and
the account id and publishes with the token through the fake; a re-authorised connection
leaves `needs_reauth`; the state is bound to the instance (a code from another instance is
not redeemed); a private instance is refused before any request; an instance that forgot
the app gets a new one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.services.publisher.platforms.mastodon import MastodonPublisher
from herald.shared.accounts.oauth import OAuthFlow
from herald.shared.domain.outcomes import Outcome
from herald.shared.domain.tenancy import ADMIN, Principal
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.stores import connections
from herald.shared.stores.tenants import create_api_key
from tests.conftest import Namespace
from tests.fakes.attempts import Ctx, request
from tests.fakes.mastodon_instance import FakeMastodon
from tests.integration.publisher_harness import Logs
from tests.support.results_pipeline import job

pytestmark = pytest.mark.integration
BASE = "https://herald.example.com"
CALLBACK = f"{BASE}/publishing/connections/oauth/mastodon/callback"
START = "/publishing/connections/oauth/mastodon/start"
BACK = "/publishing/connections/oauth/mastodon/callback"
NAMES = {"social.example": "93.184.216.34", "inside.example": "10.0.0.1", "lo.example": "127.0.0.1"}
Client = TestClient[Any, Any]


@pytest.fixture(autouse=True)
def local_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes listen on 127.0.0.1, allow-listed; two names resolve to private addresses."""
    real = socket.getaddrinfo

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")


@pytest.fixture
async def instance() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def api(ns: Namespace) -> AsyncIterator[tuple[Runtime, Client]]:
    # No app credentials: Herald registers its own app on each instance.
    rt = Runtime.build(ns.settings(oauth_redirect_base_url=BASE + "/"))
    await rt.open()
    try:
        async with TestClient(TestServer(create_app(rt, Health()))) as client:
            yield rt, client
    finally:
        await rt.close()


async def key_for(rt: Runtime, tenant: str = "acme") -> dict[str, str]:
    _, key = await create_api_key(rt.db, tenant_id=tenant, admin=False)
    return {"Authorization": f"Bearer {key}"}


async def start(client: Client, headers: dict[str, str], **body: Any) -> str:
    r = await client.post(START, json=body, headers=headers)
    assert r.status == 200, await r.text()
    return str((await r.json())["authorize_url"])


async def consent(authorize_url: str) -> dict[str, str]:
    """The browser at the instance's consent page, approving: where it is sent back."""
    async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
        back = urlsplit(r.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return {k: v[0] for k, v in parse_qs(back.query).items()}


async def callback(client: Client, back: dict[str, str]) -> aiohttp.ClientResponse:
    return await client.get(BACK, params=back, allow_redirects=False)  # no API key


async def sign_in(client: Client, headers: dict[str, str], **body: Any) -> str:
    """A whole sign-in: the connection's id."""
    r = await callback(client, await consent(await start(client, headers, **body)))
    assert r.status == 303, await r.text()
    return r.headers["Location"].split("connected=")[1]


async def test_signing_in_registers_an_app_once_and_the_connection_publishes(
    api: tuple[Runtime, Client], instance: FakeMastodon, logs: Logs
) -> None:
    rt, client = api
    headers = await key_for(rt)
    authorize_url = await start(client, headers, name="toots", instance_url=instance.base_url)
    assert authorize_url.startswith(f"{instance.base_url}/oauth/authorize?")
    [app] = instance.apps.values()
    assert app.redirect_uris == [CALLBACK] and "write:statuses" in app.scopes
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["client_id"] == [app.client_id] and query["redirect_uri"] == [CALLBACK]
    assert app.client_secret not in authorize_url
    [row] = await rt.db.fetch("SELECT host, client_id, client_secret_ciphertext FROM oauth_apps")
    assert (row["host"], row["client_id"]) == (instance.base_url, app.client_id)
    assert app.client_secret.encode() not in bytes(row["client_secret_ciphertext"])

    back = await consent(authorize_url)
    r = await callback(client, back)
    assert r.status == 303, await r.text()
    assert back["code"] not in r.headers["Location"]
    cid = r.headers["Location"].split("connected=")[1]
    made = await rt.connections().get(ADMIN, cid)
    assert made["tenant_id"] == "acme" and made["name"] == "toots"
    assert made["status"] == "active" and made["token"]["expires_at"] is None
    assert made["metadata"] == {"instanceUrl": instance.base_url, "accountId": instance.account_id}
    assert [c.call for c in instance.requests] == ["apps", "authorize", "token", "verify"]

    # A job on the connection is published with the signed-in token, through the fake.
    scheduled = await rt.jobs().schedule(
        ADMIN,
        {
            "platform": "mastodon",
            "connection_id": cid,
            "caption": "hello from a sign-in [oauth-1]",
            "media_type": "TEXT",
            "media_asset_ids": [],
            "tenant_id": "acme",
        },
    )
    loaded = await rt.connections().load_for_publish(cid)
    assert loaded is not None and loaded.access_token in instance.issued
    publisher = MastodonPublisher()
    try:
        req = replace(
            request("mastodon", [], caption="hello from a sign-in [oauth-1]", media_type="TEXT"),
            job_id=scheduled.body["id"],
            connection_id=cid,
        )
        ctx = Ctx(lambda: len(instance.calls("status")))
        out = await publisher.publish(req, loaded, ctx.context)
    finally:
        await publisher.close()
    assert out.outcome is Outcome.PUBLISHED, out
    assert len(instance.posts_with("[oauth-1]")) == 1
    [post] = instance.calls("status")
    assert post.headers["Authorization"] == f"Bearer {loaded.access_token}"

    # A second sign-in on the instance (the GET form, for links) reuses the app.
    r = await client.get(
        START,
        params={"name": "second", "instance_url": instance.base_url + "/"},
        headers=headers,
        allow_redirects=False,
    )
    assert r.status == 302, await r.text()
    assert parse_qs(urlsplit(r.headers["Location"]).query)["client_id"] == [app.client_id]
    second = await sign_in(client, headers, name="again", instance_url=instance.base_url.upper())
    assert second != cid and len(instance.calls("apps")) == 1 and len(instance.apps) == 1
    # The secret, the code and the tokens are in no answer and no log line (but the test
    # server's access log: the API serves without one).
    logged = "\n".join(line for line in logs.lines if "aiohttp.access" not in line)
    assert "oauth app registered" in logged
    for secret in (app.client_secret, back["code"], *instance.issued):
        assert secret not in logged
    listed = await client.get("/publishing/connections", headers=headers)
    text = await listed.text()
    assert instance.account_id in text
    assert all(s not in text for s in (app.client_secret, *instance.issued))


async def test_signing_in_again_reauthorises_the_connection(
    api: tuple[Runtime, Client], instance: FakeMastodon
) -> None:
    rt, client = api
    headers = await key_for(rt)
    made = await rt.connections().create(
        ADMIN,
        {
            "platform": "mastodon",
            "name": "toots",
            "tenant_id": "acme",
            "access_token": "pasted-" + "t" * 40,
            "metadata": {"instanceUrl": instance.base_url},
        },
    )
    cid = made["id"]
    scheduled = await rt.jobs().schedule(
        ADMIN,
        {
            "platform": "mastodon",
            "connection_id": cid,
            "caption": "held",
            "media_type": "TEXT",
            "media_asset_ids": [],
            "tenant_id": "acme",
        },
    )
    job_id = scheduled.body["id"]
    deadline = now_utc() + timedelta(hours=2)  # held for a new token, as results leaves it
    await rt.db.execute(
        "UPDATE jobs SET status = 'RETRY_SCHEDULED', next_attempt_at = %s,"
        ' publish_deadline = %s, last_error = \'{"code": "needs_reauth"}\' WHERE id = %s',
        (deadline, deadline, job_id),
    )
    blob = (await connections.refreshing(rt.db, cid) or {})["token_ciphertext"]
    assert await connections.mark_needs_reauth(rt.db, cid, bytes(blob))
    # Another instance than the connection's is refused; by default it is the connection's.
    async with FakeMastodon() as other:
        r = await client.post(
            START, json={"connection_id": cid, "instance_url": other.base_url}, headers=headers
        )
        assert r.status == 422 and "instance_url" in (await r.json())["error"]["fields"]
        assert other.requests == []
    assert await sign_in(client, headers, connection_id=cid) == cid
    again = await rt.connections().get(ADMIN, cid)
    assert again["status"] == "active"
    assert again["metadata"] == {"instanceUrl": instance.base_url, "accountId": instance.account_id}
    loaded = await rt.connections().load_for_publish(cid)
    assert loaded is not None and loaded.access_token in instance.issued
    assert (await job(rt, job_id))["next_attempt_at"] <= now_utc()  # released: due now


async def test_the_state_is_bound_to_its_instance(
    api: tuple[Runtime, Client], instance: FakeMastodon
) -> None:
    rt, client = api
    headers = await key_for(rt)
    async with FakeMastodon() as other:
        at_a = await consent(await start(client, headers, instance_url=instance.base_url))
        at_b = await consent(await start(client, headers, instance_url=other.base_url))
        # B's code with A's state: Herald redeems it at A only, where it means nothing.
        r = await callback(client, {"code": at_b["code"], "state": at_a["state"]})
        assert r.status == 400 and (await r.json())["error"]["code"] == "oauth_refused"
        assert other.calls("token") == [] and len(instance.calls("token")) == 1
        assert (await rt.connections().list_connections(ADMIN))["items"] == []
        # Each with its own state works (B's code was not spent).
        r = await callback(client, at_b)
        assert r.status == 303, await r.text()
        made = await rt.connections().get(ADMIN, r.headers["Location"].split("connected=")[1])
        assert made["metadata"]["instanceUrl"] == other.base_url


async def test_a_private_or_malformed_instance_is_refused_before_any_request(
    api: tuple[Runtime, Client], instance: FakeMastodon, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, client = api
    headers = await key_for(rt)
    monkeypatch.delenv(ALLOW_ENV)  # the fake on 127.0.0.1 is private now
    for url in (
        instance.base_url,
        "https://127.0.0.1",
        "https://10.0.0.1",
        "https://[::1]",
        "https://inside.example",
        "https://lo.example/",
        "http://social.example",
        "https://social.example/@someone",
        "https://social.example/?x=1",
        "https://user:pw@social.example",
        "https://" + "a" * 300 + ".example",
        "social.example",
        "https://[social.example",
        "https://social\x00.example",
        "",
        7,
        None,
    ):
        body = {"name": "x"} if url is None else {"name": "x", "instance_url": url}
        r = await client.post(START, json=body, headers=headers)
        assert r.status == 422, (url, await r.text())
        assert set((await r.json())["error"]["fields"]) == {"instance_url"}, url
    r = await client.get(
        START, params={"instance_url": "https://10.0.0.1"}, headers=headers, allow_redirects=False
    )
    assert r.status == 422
    assert instance.requests == []
    assert await rt.db.fetch("SELECT id FROM oauth_apps") == []


async def test_an_instance_that_forgot_the_app_gets_a_new_one(
    api: tuple[Runtime, Client], instance: FakeMastodon
) -> None:
    rt, client = api
    headers = await key_for(rt)
    back = await consent(await start(client, headers, instance_url=instance.base_url))
    [old] = instance.apps
    instance.forget_apps()  # an admin removed it
    r = await callback(client, back)
    assert r.status == 400 and "no longer knows" in (await r.json())["error"]["message"]
    assert old not in await r.text()
    assert await rt.db.fetch("SELECT id FROM oauth_apps") == []
    cid = await sign_in(client, headers, instance_url=instance.base_url)
    [new] = instance.apps
    assert new != old and len(instance.calls("apps")) == 2
    [row] = await rt.db.fetch("SELECT client_id FROM oauth_apps")
    assert row["client_id"] == new
    assert (await rt.connections().get(ADMIN, cid))["status"] == "active"


async def test_an_instance_that_refuses_the_app_stores_nothing(
    api: tuple[Runtime, Client], instance: FakeMastodon
) -> None:
    rt, client = api
    headers = await key_for(rt)
    for status in (500, 422):
        instance.fail_next("apps", status, {"error": "Validation failed: nope"})
        r = await client.post(START, json={"instance_url": instance.base_url}, headers=headers)
        assert r.status == 400 and (await r.json())["error"]["code"] == "oauth_refused"
    assert await rt.db.fetch("SELECT id FROM oauth_apps") == []
    assert await start(client, headers, instance_url=instance.base_url)  # works once it can


async def test_a_new_api_address_registers_a_new_app(
    api: tuple[Runtime, Client], instance: FakeMastodon, ns: Namespace
) -> None:
    rt, client = api
    first = await start(client, await key_for(rt), instance_url=instance.base_url)
    moved = Runtime.build(ns.settings(oauth_redirect_base_url="https://moved.example.com"))
    await moved.open()
    try:
        ring = moved.settings.secret_key_ring()
        flow = OAuthFlow(moved.connections(), moved.platform_env(), ring)
        second = await flow.start(
            Principal(tenant_id="acme", is_admin=False), "mastodon", instance_url=instance.base_url
        )
    finally:
        await moved.close()
    ids = [parse_qs(urlsplit(url).query)["client_id"][0] for url in (first, second)]
    assert ids[0] != ids[1] and len(instance.calls("apps")) == 2
    assert [app.redirect_uris for app in instance.apps.values()] == [
        [CALLBACK],
        ["https://moved.example.com/publishing/connections/oauth/mastodon/callback"],
    ]
