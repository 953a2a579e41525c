"""Connecting Facebook Pages and Threads accounts by OAuth sign-in through the HTTP API, and
keeping a Threads token alive with the token keeper, against the fakes' OAuth endpoints and
real Postgres: the sign-in stores the right token (the Page token; the 60-day Threads token)
with its expiry and the account id; a due Threads token is refreshed; a refused refresh holds
the connection (needs_reauth) and a new sign-in releases its held job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.shared.accounts.tokens import TokenKeeper
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.stores.tenants import create_api_key
from tests.conftest import Namespace
from tests.fakes import facebook_state, threads_state
from tests.fakes.facebook_server import FakeFacebook
from tests.fakes.threads_server import FakeThreads
from tests.support.results_pipeline import job

pytestmark = pytest.mark.integration
BASE = "https://herald.example.com"
Client = TestClient[Any, Any]
Api = tuple[Runtime, Client, FakeFacebook, FakeThreads]


@pytest.fixture
async def api(ns: Namespace) -> AsyncIterator[Api]:
    async with FakeFacebook() as fb, FakeThreads() as th:
        rt = Runtime.build(
            ns.settings(
                meta_app_id=facebook_state.APP_ID,
                meta_app_secret=facebook_state.APP_SECRET,
                oauth_redirect_base_url=BASE + "/",
                facebook_graph_url=fb.base_url,
                facebook_authorize_url=f"{fb.base_url}/dialog/oauth",
                threads_graph_url=th.base_url,
                threads_app_id=threads_state.APP_ID,
                threads_app_secret=threads_state.APP_SECRET,
                threads_authorize_url=f"{th.root_url}/oauth/authorize",
            )
        )
        await rt.open()
        try:
            async with TestClient(TestServer(create_app(rt, Health()))) as client:
                yield rt, client, fb, th
        finally:
            await rt.close()


async def sign_in(client: Client, rt: Runtime, platform: str, **start: Any) -> str:
    """Start, the consent page (the fake says yes), the callback: the connection's id."""
    _, key = await create_api_key(rt.db, tenant_id="acme", admin=False)
    r = await client.post(
        f"/publishing/connections/oauth/{platform}/start",
        json={"name": platform, **start},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status == 200, await r.text()
    authorize_url = (await r.json())["authorize_url"]
    async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as c:
        assert c.status == 302, await c.text()
        back = parse_qs(urlsplit(c.headers["Location"]).query)
    r = await client.get(
        f"/publishing/connections/oauth/{platform}/callback",
        params={"code": back["code"][0], "state": back["state"][0]},
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()
    return r.headers["Location"].split("connected=")[1]


async def token_of(rt: Runtime, cid: str) -> str:
    loaded = await rt.connections().load_for_publish(cid)
    assert loaded is not None
    return loaded.access_token


async def make_due(rt: Runtime, cid: str) -> None:
    await rt.db.execute(
        "UPDATE connections SET token_refresh_at = now() - interval '1 s' WHERE id = %s", (cid,)
    )


async def test_facebook_sign_in_stores_the_page_token_without_expiry(api: Api) -> None:
    rt, client, fb, _ = api
    cid = await sign_in(client, rt, "facebook", metadata={"pageId": fb.page})
    made = await rt.connections().get(ADMIN, cid)
    assert made["metadata"]["pageId"] == fb.page and made["tenant_id"] == "acme"
    assert made["token"]["expires_at"] is None and made["token"]["refresh_at"] is None
    page_token = await token_of(rt, cid)
    assert fb.tokens[page_token].kind == "page" and page_token not in str(made)
    assert [r.call for r in fb.requests] == ["consent", "oauth_token", "oauth_token", "accounts"]
    assert all(r.token_via in ("", "header", "form") for r in fb.requests)


async def test_threads_sign_in_refresh_and_a_refused_refresh_that_a_new_sign_in_releases(
    api: Api,
) -> None:
    rt, client, _, th = api
    cid = await sign_in(client, rt, "threads")
    made = await rt.connections().get(ADMIN, cid)
    assert made["metadata"] == {"threadsUserId": th.user}
    first = await token_of(rt, cid)
    assert th.tokens[first].kind == "long"  # the 60-day token, not the 1-hour one
    expires = made["token"]["expires_at"]
    assert expires is not None and made["token"]["refresh_at"] is not None

    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    th.advance(2 * 86_400)  # old enough to be refreshed
    await make_due(rt, cid)
    assert await keeper.refresh_one(cid) is True
    second = await token_of(rt, cid)
    assert second != first and th.calls("refresh")[-1].token_via == "header"
    [row] = await rt.db.fetch("SELECT token_expires_at FROM connections WHERE id = %s", (cid,))
    assert row["token_expires_at"] - now_utc() > timedelta(days=59)

    # A job waits on it; the token is revoked; the refresh is refused: the connection is held.
    scheduled = await rt.jobs().schedule(
        ADMIN, {"platform": "threads", "connection_id": cid, "media_type": "TEXT",
                "media_asset_ids": [], "caption": "held", "tenant_id": "acme"},
    )  # fmt: skip
    job_id = scheduled.body["id"]
    deadline = now_utc() + timedelta(hours=2)
    await rt.db.execute(  # as the results service leaves a job whose connection needs a token
        "UPDATE jobs SET status = 'RETRY_SCHEDULED', next_attempt_at = %s,"
        ' publish_deadline = %s, last_error = \'{"code": "needs_reauth"}\' WHERE id = %s',
        (deadline, deadline, job_id),
    )
    th.revoke(second)
    await make_due(rt, cid)
    assert await keeper.refresh_one(cid) is False
    held = await rt.connections().get(ADMIN, cid)
    assert held["status"] == "needs_reauth" and second not in str(held)

    assert await sign_in(client, rt, "threads", connection_id=cid) == cid
    again = await rt.connections().get(ADMIN, cid)
    assert again["status"] == "active" and await token_of(rt, cid) not in (first, second)
    assert (await job(rt, job_id))["next_attempt_at"] <= now_utc()  # released: due now
