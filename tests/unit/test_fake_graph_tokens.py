"""The fake Graph server's token lifetimes and its refresh endpoint behave as documented:
a token at least a day old and unexpired is refreshed into a 60-day one on the Instagram
Login host; an expired token answers 190/463 everywhere."""

from __future__ import annotations

from typing import Any

import aiohttp

from bench.graph_fake.model import DAY
from bench.graph_fake.tokens import LONG_LIVED_SECONDS
from tests.fakes.graph_server import DEFAULT_ACCOUNT, INSTAGRAM, FakeGraph

IG_TOKEN = "IGAA" + "k" * 40


async def get(url: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as r:
        return r.status, await r.json(content_type=None)


def root(url: str) -> str:
    return url.rsplit("/", 1)[0]  # without the version: token endpoints are unversioned


async def test_a_day_old_token_is_refreshed_into_a_60_day_one_that_works() -> None:
    async with FakeGraph() as fake:
        fake.add_account(DEFAULT_ACCOUNT, IG_TOKEN, login=INSTAGRAM)
        fake.set_token_life(IG_TOKEN, expires_in=60 * DAY, age=2 * DAY)
        for base in (root(fake.instagram_base_url), fake.instagram_base_url):
            status, body = await get(
                f"{base}/refresh_access_token",
                grant_type="ig_refresh_token",
                access_token=IG_TOKEN,
            )
            assert status == 200, body
            assert body["token_type"] == "bearer" and body["expires_in"] == LONG_LIVED_SECONDS
            new = body["access_token"]
            assert new != IG_TOKEN and fake.refreshed[-1] == (IG_TOKEN, new)
            status, _ = await get(
                f"{fake.instagram_base_url}/{DEFAULT_ACCOUNT}/content_publishing_limit",
                access_token=new,
            )
            assert status == 200


async def test_refresh_refuses_young_expired_and_wrong_grant_tokens() -> None:
    async with FakeGraph() as fake:
        fake.add_account(DEFAULT_ACCOUNT, IG_TOKEN, login=INSTAGRAM)
        url = f"{root(fake.instagram_base_url)}/refresh_access_token"
        fake.set_token_life(IG_TOKEN, expires_in=60 * DAY, age=3600)
        status, body = await get(url, grant_type="ig_refresh_token", access_token=IG_TOKEN)
        assert status == 400 and body["error"]["code"] == 100  # too young: not an auth error
        fake.set_token_life(IG_TOKEN, expires_in=60 * DAY, age=2 * DAY)
        status, body = await get(url, grant_type="fb_exchange_token", access_token=IG_TOKEN)
        assert status == 400 and body["error"]["code"] == 100
        fake.advance(59 * DAY)
        status, body = await get(url, grant_type="ig_refresh_token", access_token=IG_TOKEN)
        assert status == 400
        assert (body["error"]["code"], body["error"]["error_subcode"]) == (190, 463)
        assert fake.refreshed == []


async def test_an_expired_token_fails_every_call_and_facebook_has_no_refresh_route() -> None:
    async with FakeGraph() as fake:
        fake.add_account(DEFAULT_ACCOUNT, IG_TOKEN, login=INSTAGRAM)
        fake.set_token_life(IG_TOKEN, expires_in=10, age=0)
        limit = f"{fake.instagram_base_url}/{DEFAULT_ACCOUNT}/content_publishing_limit"
        assert (await get(limit, access_token=IG_TOKEN))[0] == 200
        fake.advance(11)
        status, body = await get(limit, access_token=IG_TOKEN)
        assert status == 400 and body["error"]["code"] == 190
        status, body = await get(
            f"{root(fake.base_url)}/refresh_access_token",
            grant_type="ig_refresh_token",
            access_token=fake.token,
        )
        assert status != 200 and "access_token" not in body
