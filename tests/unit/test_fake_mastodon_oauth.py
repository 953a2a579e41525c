"""The fake Mastodon instance's OAuth keeps to the documented flow: an app registered with
its redirect URIs and scopes (422 otherwise), the consent page redirecting with a code and
the state (or the person's refusal, an unknown client 401, a foreign redirect URI 400),
the code exchanged once by the app that asked for it (401 invalid_client, 400
invalid_grant ...), the token answered working on the API, and an app the instance
forgot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from tests.fakes.mastodon_instance import FakeMastodon

BACK = "https://herald.example.com/publishing/connections/oauth/mastodon/callback"
SCOPES = "write:statuses write:media read:accounts read:statuses"


@pytest.fixture
async def m() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, **kw) as r:
        return r.status, await r.json(content_type=None)


async def register(http: aiohttp.ClientSession, m: FakeMastodon, **form: str) -> tuple[int, Any]:
    body = {"client_name": "Herald", "redirect_uris": BACK, "scopes": SCOPES, **form}
    return await post(http, f"{m.base_url}/api/v1/apps", data=body)


async def authorize(
    http: aiohttp.ClientSession, m: FakeMastodon, **query: str
) -> tuple[int, dict[str, list[str]]]:
    """The consent page: (status, the query it redirects back with; empty if it did not)."""
    url = f"{m.base_url}/oauth/authorize?{urlencode(query)}"
    async with http.get(url, allow_redirects=False) as r:
        if r.status != 302:
            return r.status, {}
        location = urlsplit(r.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == BACK
        return r.status, parse_qs(location.query)


async def test_sign_in_registers_an_app_and_exchanges_a_code_once(
    http: aiohttp.ClientSession, m: FakeMastodon
) -> None:
    status, app = await register(http, m)
    assert status == 200 and app["redirect_uris"] == [BACK] and app["scopes"] == SCOPES.split()
    cid, secret = app["client_id"], app["client_secret"]
    status, back = await authorize(
        http, m, client_id=cid, redirect_uri=BACK, response_type="code", scope=SCOPES, state="s1"
    )
    assert status == 302 and back["state"] == ["s1"] and "error" not in back
    code = back["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": cid,
        "client_secret": secret,
        "redirect_uri": BACK,
    }
    # Another client, a wrong secret, another redirect URI: refused, the code still unused.
    _, other = await register(http, m)
    status, body = await post(
        http,
        f"{m.base_url}/oauth/token",
        data=form | {"client_id": other["client_id"], "client_secret": other["client_secret"]},
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form | {"client_secret": "x"})
    assert (status, body["error"]) == (401, "invalid_client")
    status, body = await post(
        http, f"{m.base_url}/oauth/token", data=form | {"redirect_uri": BACK + "x"}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form | {"grant_type": "pw"})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form)
    assert status == 200 and body["token_type"] == "Bearer" and body["scope"] == SCOPES
    token = body["access_token"]
    assert token != m.token
    # The code works once; the token works on the API for the account.
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form)
    assert (status, body["error"]) == (400, "invalid_grant")
    async with http.get(
        f"{m.base_url}/api/v1/accounts/verify_credentials",
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 200 and (await r.json())["id"] == m.account_id
    assert [r.call for r in m.requests].count("token") == 6


async def test_consent_page_refusals(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    _, app = await register(http, m, scopes="write:statuses")
    ok = {"client_id": app["client_id"], "redirect_uri": BACK, "response_type": "code"}
    status, back = await authorize(http, m, **(ok | {"client_id": "nope"}))
    assert (status, back) == (401, {})
    status, back = await authorize(http, m, **(ok | {"redirect_uri": "https://evil.example/cb"}))
    assert (status, back) == (400, {})  # an error page, never a redirect elsewhere
    status, back = await authorize(http, m, **(ok | {"response_type": "token"}), state="s")
    assert back["error"] == ["unsupported_response_type"] and back["state"] == ["s"]
    status, back = await authorize(http, m, **ok, scope="write:statuses read:accounts")
    assert back["error"] == ["invalid_scope"]
    m.deny_next_consent = True
    status, back = await authorize(http, m, **ok, scope="write:statuses", state="s")
    assert back["error"] == ["access_denied"] and "code" not in back
    status, back = await authorize(http, m, **ok, scope="write:statuses")
    assert "code" in back  # only the next one was refused


async def test_app_registration_is_validated(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    for form in (
        {"client_name": ""},
        {"redirect_uris": ""},
        {"redirect_uris": "/relative"},
        {"scopes": "write:everything"},
    ):
        status, body = await register(http, m, **form)
        assert status == 422 and body["error"].startswith("Validation failed"), form
    status, body = await register(http, m, redirect_uris="urn:ietf:wg:oauth:2.0:oob")
    assert status == 200
    assert len(m.apps) == 1


async def test_a_forgotten_app_and_an_old_code(
    http: aiohttp.ClientSession, m: FakeMastodon
) -> None:
    _, app = await register(http, m)
    query = {"client_id": app["client_id"], "redirect_uri": BACK, "response_type": "code"}
    _, back = await authorize(http, m, **query, scope=SCOPES)
    form = {
        "grant_type": "authorization_code",
        "code": back["code"][0],
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": BACK,
    }
    m.advance(601)  # codes live 10 minutes
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form)
    assert (status, body["error"]) == (400, "invalid_grant")
    m.forget_apps()
    status, body = await post(http, f"{m.base_url}/oauth/token", data=form)
    assert (status, body["error"]) == (401, "invalid_client")
    status, _ = await authorize(http, m, **query, scope=SCOPES)
    assert status == 401
