"""LinkedIn sign-in and refresh (3-legged OAuth 2): the consent page, the code exchanged at
``/accessToken`` (a 60-day access token; a refresh token for approved partners only), the
member's id from ``/v2/userinfo`` (author ``urn:li:person:<sub>``), and the refresh
(``grant_type=refresh_token``; the refresh token keeps its first expiry)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from herald.platforms import AuthLost, IssuedToken
from herald.services.publisher.platforms.rest.oauth2 import account, token_call, unpack

SCOPES = "openid profile w_member_social w_organization_social r_organization_social"


def _app(settings: Any) -> tuple[str, str]:
    secret = settings.linkedin_client_secret
    if not settings.linkedin_client_id or secret is None:
        raise RuntimeError("HERALD_LINKEDIN_CLIENT_ID and HERALD_LINKEDIN_CLIENT_SECRET are unset")
    return str(settings.linkedin_client_id), str(secret.get_secret_value())


def consent_url(settings: Any, *, state: str, redirect_uri: str) -> str:
    client_id, _ = _app(settings)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": SCOPES,
    }
    return f"{settings.linkedin_oauth_url}/authorization?{urlencode(query)}"


async def exchange(settings: Any, *, code: str, redirect_uri: str) -> IssuedToken:
    client_id, secret = _app(settings)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": secret,
    }
    issued = await token_call(
        f"{settings.linkedin_oauth_url}/accessToken", form, secrets=(secret, code)
    )
    access, refresh = unpack(issued.access_token)
    member = await _member(settings, access)
    metadata = {"author": f"urn:li:person:{member}", "refreshable": str(bool(refresh)).lower()}
    return IssuedToken(issued.access_token, issued.expires_at, metadata=metadata)


async def refresh(settings: Any, token: str) -> IssuedToken:
    _, refresh_token = unpack(token)
    if refresh_token is None:
        raise AuthLost("LinkedIn issued no refresh token: sign in again")
    client_id, secret = _app(settings)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": secret,
    }
    return await token_call(
        f"{settings.linkedin_oauth_url}/accessToken", form, secrets=(secret, refresh_token)
    )


async def _member(settings: Any, access: str) -> str:
    body = await account(f"{settings.linkedin_api_url}/v2/userinfo", access, "LinkedIn's userinfo")
    sub = body.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthLost("LinkedIn's userinfo answered no member id")
    return sub
