"""Keeping an Instagram token alive: Instagram Login tokens (metadata `login` =
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
