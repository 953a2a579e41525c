"""The fake's OAuth endpoints are as strict as Meta documents them: the app, an exactly
registered redirect URI, the scope, a code used once with its own redirect URI, the app
secret for both exchanges."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from tests.fakes.graph_server import FakeGraph

APP, SECRET, BACK = "42", "app-secret", "https://herald.example.com/cb"
SCOPE = "instagram_business_basic,instagram_business_content_publish"


async def authorize(fake: FakeGraph, **changes: str) -> tuple[int, dict[str, Any]]:
    root = fake.instagram_base_url.rsplit("/", 1)[0]
    params = {"client_id": APP, "redirect_uri": BACK, "response_type": "code", "scope": SCOPE}
    params |= {"state": "s1"} | changes
    url = f"{root}/oauth/authorize?{urlencode(params)}"
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as r:
        if r.status != 302:
            return r.status, await r.json()
        location = r.headers["Location"]
    assert location.startswith(BACK + "?") and location.endswith("#_")
    return 302, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(fake: FakeGraph, **changes: str) -> tuple[int, dict[str, Any]]:
    root = fake.instagram_base_url.rsplit("/", 1)[0]
    form = {"client_id": APP, "client_secret": SECRET, "grant_type": "authorization_code"}
    form |= {"redirect_uri": BACK} | changes
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{root}/oauth/access_token", data=form) as r,
    ):
        return r.status, await r.json()


async def test_the_consent_page_checks_the_app_the_redirect_and_the_scope() -> None:
    async with FakeGraph() as fake:
        fake.register_app(APP, SECRET, [BACK])
        for change in (
            {"client_id": "43"},
            {"redirect_uri": BACK + "/"},
            {"response_type": "token"},
            {"scope": "instagram_business_content_publish"},
        ):
            status, body = await authorize(fake, **change)
            assert status == 400 and body["error_type"] == "OAuthException", change
        status, back = await authorize(fake)
        assert status == 302 and back["state"] == "s1" and back["code"]
        fake.deny_next_consent = True
        status, back = await authorize(fake)
        assert back["error"] == "access_denied" and "code" not in back


async def test_a_code_is_exchanged_once_with_its_redirect_and_the_secret() -> None:
    async with FakeGraph() as fake:
        fake.register_app(APP, SECRET, [BACK, BACK + "2"])
        _, back = await authorize(fake)
        code = back["code"]
        assert (await exchange(fake, code=code, client_secret="wrong"))[0] == 400
        status, body = await exchange(fake, code=code, redirect_uri=BACK + "2")
        assert status == 400 and "redirect_uri" in body["error_message"]
        _, back = await authorize(fake)
        status, body = await exchange(fake, code=back["code"])
        assert status == 200 and body["data"][0]["access_token"].startswith("IGAA")
        status, body = await exchange(fake, code=back["code"])  # used
        assert status == 400
        _, back = await authorize(fake)
        fake.advance(3601)
        assert (await exchange(fake, code=back["code"]))[0] == 400  # expired
