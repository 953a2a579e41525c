"""The consent pages of the fake LinkedIn and X (OAuth 2 authorization code), from each
platform's documentation: the browser arrives with the app's ``client_id``, a registered
``redirect_uri``, ``scope``, ``state`` (and for X the PKCE ``code_challenge`` with
``code_challenge_method``); the member approves and is sent back to ``redirect_uri`` with
``code`` and ``state`` (the code made by the fake's ``issue_code``), or, after
``deny_next_consent``, with the platform's refusal (LinkedIn ``user_cancelled_authorize``,
X ``access_denied``). An unknown client or a redirect URI the app did not register is an
error page (400, nothing redirected); a missing parameter too."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.http_fake import Refusal


class ConsentApp(Protocol):
    client_id: str
    redirect_uris: set[str]
    deny_next: bool


def _page(fake: ConsentApp, query: dict[str, str], required: tuple[str, ...]) -> str:
    """The redirect URI of a consent page the member may answer (else an error page)."""
    missing = [k for k in required if not query.get(k)]
    if missing:
        raise Refusal(400, {"error": "invalid_request", "missing": missing})
    if query["response_type"] != "code":
        raise Refusal(400, {"error": "unsupported_response_type"})
    if query["client_id"] != fake.client_id:
        raise Refusal(400, {"error": "invalid_client", "error_description": "unknown client"})
    if query["redirect_uri"] not in fake.redirect_uris:
        raise Refusal(400, {"error": "invalid_redirect_uri", "error_description": "not registered"})
    return query["redirect_uri"]


def _back(redirect_uri: str, **params: str) -> web.Response:
    return web.Response(status=302, headers={"Location": f"{redirect_uri}?{urlencode(params)}"})


def linkedin(fake: Any, query: dict[str, str]) -> web.Response:
    """``GET /oauth/v2/authorization``."""
    redirect = _page(fake, query, ("response_type", "client_id", "redirect_uri", "scope"))
    state = query.get("state", "")
    if fake.deny_next:
        fake.deny_next = False
        return _back(redirect, error="user_cancelled_authorize", state=state)
    return _back(redirect, code=fake.issue_code(redirect), state=state)


def x(fake: Any, query: dict[str, str]) -> web.Response:
    """``GET /i/oauth2/authorize`` (PKCE required; ``plain`` or ``S256``)."""
    required = ("response_type", "client_id", "redirect_uri", "scope", "state")
    redirect = _page(fake, query, (*required, "code_challenge", "code_challenge_method"))
    if query["code_challenge_method"] != "S256":  # the fake checks S256 only
        raise Refusal(400, {"error": "invalid_request", "error_description": "S256 only"})
    if fake.deny_next:
        fake.deny_next = False
        return _back(redirect, error="access_denied", state=query["state"])
    code = fake.issue_code(redirect, query["code_challenge"])
    return _back(redirect, state=query["state"], code=code)
