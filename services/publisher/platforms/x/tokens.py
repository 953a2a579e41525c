"""X sign-in and refresh (OAuth 2 authorization code with PKCE, a confidential client): the
consent page with an S256 ``code_challenge``, the code exchanged at ``/2/oauth2/token``
(client id and secret in Basic auth, with the ``code_verifier``), the account's id from
``/2/users/me``, and the refresh (``grant_type=refresh_token``): every refresh answers a
new refresh token and the old one stops working, so the new pair is stored at once.

The verifier is derived from the client secret and the redirect URI (HMAC-SHA256), so the
exchange can compute it again without keeping state between the two steps; the client
secret on the token call still authenticates the app."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from herald.platforms import AuthLost, IssuedToken
from herald.services.publisher.platforms.rest.oauth2 import account, basic, token_call, unpack

SCOPES = "tweet.read tweet.write users.read media.write offline.access"


def _app(settings: Any) -> tuple[str, str]:
    secret = settings.x_client_secret
    if not settings.x_client_id or secret is None:
        raise RuntimeError("HERALD_X_CLIENT_ID and HERALD_X_CLIENT_SECRET are not set")
    return str(settings.x_client_id), str(secret.get_secret_value())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verifier(secret: str, redirect_uri: str) -> str:
    return _b64(hmac.new(secret.encode(), f"pkce:{redirect_uri}".encode(), "sha256").digest())


def challenge(code_verifier: str) -> str:
    return _b64(hashlib.sha256(code_verifier.encode()).digest())


def consent_url(settings: Any, *, state: str, redirect_uri: str) -> str:
    client_id, secret = _app(settings)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "state": state,
        "code_challenge": challenge(verifier(secret, redirect_uri)),
        "code_challenge_method": "S256",
    }
    return f"{settings.x_authorize_url}?{urlencode(query)}"


async def exchange(settings: Any, *, code: str, redirect_uri: str) -> IssuedToken:
    client_id, secret = _app(settings)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier(secret, redirect_uri),
        "client_id": client_id,
    }
    issued = await token_call(
        f"{settings.x_api_url}/2/oauth2/token",
        form,
        headers=basic(client_id, secret),
        secrets=(secret, code),
    )
    user = await _me(settings, unpack(issued.access_token)[0])
    return IssuedToken(issued.access_token, issued.expires_at, metadata=user)


async def refresh(settings: Any, token: str) -> IssuedToken:
    _, refresh_token = unpack(token)
    if refresh_token is None:
        raise AuthLost("X issued no refresh token (offline.access): sign in again")
    client_id, secret = _app(settings)
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return await token_call(
        f"{settings.x_api_url}/2/oauth2/token",
        form,
        headers=basic(client_id, secret),
        secrets=(secret, refresh_token),
    )


async def _me(settings: Any, access: str) -> dict[str, str]:
    body = await account(f"{settings.x_api_url}/2/users/me", access, "X's users/me")
    data = body.get("data")
    if not isinstance(data, dict) or not data.get("id"):
        raise AuthLost("X's users/me answered no account id")
    return {"userId": str(data["id"]), "username": str(data.get("username") or "")}
