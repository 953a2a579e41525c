"""Instagram tokens: signing in (OAuth with Instagram Login) and keeping a token alive.

Keeping it alive: Instagram Login tokens (metadata `login` =
`instagram`) live 60 days and are refreshed with `GET /refresh_access_token?grant_type=
ig_refresh_token` on the Instagram Login host (unversioned), once at least a day old and
before they expire; the answer gives the new token and its `expires_in`.

A Graph error 190 (or an HTTP 401) means the token is dead: `AuthLost`, and the connection
needs a new sign-in. Anything else (a 5xx, a timeout, a throttle) is transient: the token
keeper tries again later. Tokens of Facebook Login connections are not refreshed here (a
Page-derived token does not expire; a user token is renewed by signing in again).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp

from herald.platforms import AuthLost, Connection, IssuedToken, Scrubber
from herald.shared.messages.codec import now_utc

_VERSION = re.compile(r"/v\d+\.\d+/?$")
TIMEOUT = aiohttp.ClientTimeout(total=30)


def unversioned(url: str) -> str:
    """A Graph base URL without its version (the token endpoints are unversioned)."""
    return _VERSION.sub("", url.rstrip("/"))


async def refresh(settings: Any, connection: Connection) -> IssuedToken:
    token = connection.access_token
    url = f"{unversioned(settings.instagram_login_graph_url)}/refresh_access_token"
    # The token in the Authorization header, as on every Graph call (never in a URL).
    params = {"grant_type": "ig_refresh_token"}
    secret = settings.instagram_app_secret
    if secret is not None:  # as on every Graph call when the app requires it
        key = secret.get_secret_value().encode()
        params["appsecret_proof"] = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.get(url, params=params, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        status = response.status
    return issued(status, body if isinstance(body, dict) else {}, Scrubber(token))


def issued(status: int, body: dict[str, Any], scrub: Scrubber) -> IssuedToken:
    """The refresh's answer as a new token, or the error it is."""
    token, expires_in = body.get("access_token"), body.get("expires_in")
    if status == 200 and isinstance(token, str) and token:
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = now_utc() + timedelta(seconds=float(expires_in))
        return IssuedToken(access_token=token, expires_at=expires_at)
    found = body.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = error.get("code", body.get("code"))
    message = scrub.text(str(error.get("message") or body.get("error_message") or ""))[:300]
    if status == 401 or code == 190:
        raise AuthLost(f"Instagram refused the token (code {code}): {message}")
    raise RuntimeError(f"Instagram token refresh: HTTP {status}, code {code}: {message}")


# ---- OAuth sign-in (Instagram Login) -----------------------------------------------------

SCOPES = "instagram_business_basic,instagram_business_content_publish"


def consent_url(settings: Any, *, state: str, redirect_uri: str) -> str:
    """Instagram's consent page: the app, where to come back, the scopes, the state."""
    query = urlencode(
        {
            "client_id": settings.meta_app_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": SCOPES,
            "state": state,
        }
    )
    return f"{settings.instagram_authorize_url}?{query}"


async def exchange_code(settings: Any, *, code: str, redirect_uri: str) -> IssuedToken:
    """The code → a short-lived token (1 h) → a long-lived one (60 days), and the account's
    id (`/me`'s `user_id`): the metadata a connection needs."""
    secret = settings.meta_app_secret.get_secret_value()
    graph = settings.instagram_login_graph_url.rstrip("/")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        form = {
            "client_id": settings.meta_app_id,
            "client_secret": secret,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code": code,
        }
        status, body = await _call(http.post(settings.instagram_code_exchange_url, data=form))
        found = body.get("data")
        first = found[0] if isinstance(found, list) and found else body  # newer: {"data": [...]}
        short = first.get("access_token") if isinstance(first, dict) else None
        if status != 200 or not isinstance(short, str) or not short:
            raise AuthLost(_refusal("the code exchange", status, body, code, secret))
        bearer = {"Authorization": f"Bearer {short}"}
        params = {"grant_type": "ig_exchange_token", "client_secret": secret}
        status, body = await _call(
            http.get(f"{unversioned(graph)}/access_token", params=params, headers=bearer)
        )
        long = issued(status, body, Scrubber(short)) if status == 200 else None
        if long is None:
            raise AuthLost(_refusal("the long-lived exchange", status, body, short, secret))
        bearer = {"Authorization": f"Bearer {long.access_token}"}
        status, me = await _call(
            http.get(f"{graph}/me", params={"fields": "user_id,username"}, headers=bearer)
        )
    account = str(me.get("user_id") or "")
    if status != 200 or not account.isdigit():
        raise AuthLost(_refusal("reading the account", status, me, long.access_token, secret))
    metadata = {"instagramBusinessAccountId": account, "login": "instagram"}
    return IssuedToken(long.access_token, long.expires_at, metadata)


async def _call(request: Any) -> tuple[int, dict[str, Any]]:
    async with request as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        return response.status, body if isinstance(body, dict) else {}


def _refusal(step: str, status: int, body: dict[str, Any], *secrets: str) -> str:
    """Why a step failed, without any secret in it (Instagram's two error shapes)."""
    error = body.get("error")
    detail = error.get("message") if isinstance(error, dict) else body.get("error_message")
    text = f"Instagram refused {step}: HTTP {status}: {detail or 'no reason given'}"
    for secret in secrets:
        text = Scrubber(secret).text(text)
    return text[:300]
