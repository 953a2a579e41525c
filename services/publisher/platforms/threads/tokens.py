"""Threads tokens: the OAuth sign-in (consent page, code → 1-hour token → 60-day token with
``th_exchange_token``) and the refresh (``th_refresh_token``: a new 60-day token for one at
least a day old and not expired). The token endpoints are on the API's host, unversioned."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from herald.platforms import IssuedToken
from herald.services.publisher.platforms.meta.oauth import (
    access_token,
    expiry,
    root_of,
    token_call,
)

SCOPES = "threads_basic,threads_content_publish"


def _app(settings: Any) -> tuple[str, str]:
    secret = settings.threads_app_secret
    if not settings.threads_app_id or secret is None:
        raise RuntimeError("HERALD_THREADS_APP_ID and HERALD_THREADS_APP_SECRET are not set")
    return str(settings.threads_app_id), str(secret.get_secret_value())


def consent_url(settings: Any, *, state: str, redirect_uri: str) -> str:
    app_id, _ = _app(settings)
    query = {
        "client_id": app_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
        "response_type": "code",
        "state": state,
    }
    return f"{settings.threads_authorize_url}?{urlencode(query)}"


async def long_lived_from_code(settings: Any, *, code: str, redirect_uri: str) -> IssuedToken:
    app_id, secret = _app(settings)
    root = root_of(settings.threads_graph_url)
    form = {
        "client_id": app_id,
        "client_secret": secret,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    short = await token_call("POST", f"{root}/oauth/access_token", form=form, secrets=(secret,))
    query = {"grant_type": "th_exchange_token", "client_secret": secret}
    long = await token_call(
        "GET", f"{root}/access_token", token=access_token(short), query=query, secrets=(secret,)
    )
    user = {"threadsUserId": str(short["user_id"])} if short.get("user_id") else {}
    return IssuedToken(access_token(long), expiry(long), metadata=user)


async def refresh(settings: Any, token: str) -> IssuedToken:
    root = root_of(settings.threads_graph_url)
    query = {"grant_type": "th_refresh_token"}
    body = await token_call("GET", f"{root}/refresh_access_token", token=token, query=query)
    return IssuedToken(access_token(body), expiry(body))
