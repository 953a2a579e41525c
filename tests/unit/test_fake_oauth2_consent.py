"""The fake LinkedIn's and X's consent pages keep to the documented OAuth 2 flow: the member
approves and is sent back to the registered redirect URI with a code and the state (or the
platform's refusal), the code is redeemed once at the token endpoint (for X only with the
PKCE verifier of the challenge), the tokens live `token_life`, and a bad request is an
error page that redirects nowhere."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.x_server import FakeX

BACK = "https://herald.example.com/back"
VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def consent(http: aiohttp.ClientSession, url: str, **query: str) -> tuple[int, Any]:
    """(status, the query sent back; the error page's body when not redirected)."""
    async with http.get(f"{url}?{urlencode(query)}", allow_redirects=False) as r:
        if r.status != 302:
            return r.status, await r.json()
        back = urlsplit(r.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == BACK
        return r.status, {k: v[0] for k, v in parse_qs(back.query).items()}


async def token(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, **kw) as r:
        return r.status, await r.json()


async def test_linkedin_consent_code_once_and_refusals(http: aiohttp.ClientSession) -> None:
    async with FakeLinkedIn() as li:
        li.redirect_uris.add(BACK)
        li.token_life = 600
        page = f"{li.base_url}/oauth/v2/authorization"
        query = {"response_type": "code", "client_id": li.client_id, "redirect_uri": BACK}
        status, back = await consent(http, page, **query, scope="openid", state="s1")
        assert status == 302 and back["state"] == "s1" and back["code"] in li.codes
        form = {
            "grant_type": "authorization_code",
            "code": back["code"],
            "redirect_uri": BACK,
            "client_id": li.client_id,
            "client_secret": li.client_secret,
        }
        url = f"{li.base_url}/oauth/v2/accessToken"
        status, issued = await token(http, url, data=form)
        assert status == 200 and issued["expires_in"] == 600 and issued["refresh_token"]
        assert li.grants[issued["access_token"]].expires == pytest.approx(li.now() + 600, abs=5)
        status, again = await token(http, url, data=form)
        assert (status, again["error"]) == (400, "invalid_grant")

        li.deny_next = True
        status, back = await consent(http, page, **query, scope="openid", state="s2")
        assert back == {"error": "user_cancelled_authorize", "state": "s2"}
        for bad in ({"client_id": "other"}, {"redirect_uri": "https://evil.example/"}, {}):
            status, body = await consent(http, page, **{**query, **bad})  # {}: no scope
            assert status == 400 and body["error"]


async def test_x_consent_needs_pkce_and_the_verifier(http: aiohttp.ClientSession) -> None:
    async with FakeX() as x:
        x.redirect_uris.add(BACK)
        x.token_life = 900
        page = f"{x.base_url}/i/oauth2/authorize"
        query = {
            "response_type": "code",
            "client_id": x.client_id,
            "redirect_uri": BACK,
            "scope": "tweet.write offline.access",
            "state": "s1",
            "code_challenge": CHALLENGE.decode(),
            "code_challenge_method": "S256",
        }
        status, back = await consent(http, page, **query)
        assert status == 302 and back["state"] == "s1"
        auth = aiohttp.BasicAuth(x.client_id, x.client_secret)
        url = f"{x.base_url}/2/oauth2/token"
        form = {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": BACK}
        status, refused = await token(
            http, url, data={**form, "code_verifier": "w" * 50}, auth=auth
        )
        assert status == 400 and refused["error"] == "invalid_request"  # the code is spent
        status, back = await consent(http, page, **query)
        form["code"] = back["code"]
        status, issued = await token(http, url, data={**form, "code_verifier": VERIFIER}, auth=auth)
        assert status == 200 and issued["expires_in"] == 900 and issued["refresh_token"]

        x.deny_next = True
        assert (await consent(http, page, **query))[1] == {"error": "access_denied", "state": "s1"}
        no_pkce = {k: v for k, v in query.items() if k != "code_challenge"}
        for bad in (no_pkce, {**query, "client_id": "other"}, {**query, "redirect_uri": "x:/"}):
            status, body = await consent(http, page, **bad)
            assert status == 400 and body["error"]
        assert x.calls_in_window == 0  # the consent page is not an API call
