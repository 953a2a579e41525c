"""The fake's OAuth sign-in with Instagram Login, strict like Meta's documentation:

1. ``GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope&state`` (the
   consent page; the fake's person consents at once, or refuses when told to): 302 to the
   redirect URI with ``code`` and ``state`` (and ``#_`` at the end, as Instagram adds), or
   with ``error=access_denied&error_reason=user_denied``. The app id, a registered redirect
   URI (exact match), ``response_type=code`` and the ``instagram_business_basic`` scope are
   required.
2. ``POST /oauth/access_token`` (form: ``client_id, client_secret, grant_type=
   authorization_code, redirect_uri, code``): a short-lived token (1 hour) in
   ``{"data": [{"access_token", "user_id", "permissions"}]}``. A code works once, for an
   hour, with the redirect URI it was issued for. Errors have the Instagram Login shape
   ``{"error_type": "OAuthException", "code": 400, "error_message": "…"}``.
3. ``GET /access_token?grant_type=ig_exchange_token&client_secret=…`` with the short token:
   ``{"access_token", "token_type": "bearer", "expires_in": 5183944}`` (60 days).
4. ``GET /me?fields=user_id,username``: the account's ``user_id`` (``id`` is app-scoped).

The endpoints live on the Instagram Login host (``instagram_base_url``'s root).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bench.graph_fake.model import DEFAULT_ACCOUNT, INSTAGRAM, GraphFault, select
from bench.graph_fake.tokens import LONG_LIVED_SECONDS

SHORT_LIVED_SECONDS = 3600
CODE_SECONDS = 3600


class OAuthApp:
    """The fake's OAuth side (mixed into the fake; uses its clock and token book)."""

    tokens: dict[str, tuple[str, str]]

    def now(self) -> float:
        raise NotImplementedError

    def set_token_life(self, token: str, *, expires_in: float | None, age: float = 0.0) -> None:
        raise NotImplementedError

    def _init_oauth(self) -> None:
        self.app_id: str | None = None
        self.app_secret_oauth: str | None = None
        self.redirect_uris: set[str] = set()
        self.consent_account = DEFAULT_ACCOUNT
        self.deny_next_consent = False
        self.codes: dict[str, tuple[str, str, float]] = {}  # code → (redirect, account, at)

    def register_app(self, app_id: str, secret: str, redirect_uris: list[str]) -> None:
        self.app_id, self.app_secret_oauth = app_id, secret
        self.redirect_uris = set(redirect_uris)

    def authorize(self, params: dict[str, str]) -> web.Response:
        if self.app_id is None or params.get("client_id") != self.app_id:
            return _oauth_error("Invalid platform app")
        redirect = params.get("redirect_uri", "")
        if redirect not in self.redirect_uris:
            return _oauth_error("Invalid redirect_uri")
        if params.get("response_type") != "code":
            return _oauth_error("Invalid response_type: must be code")
        if "instagram_business_basic" not in params.get("scope", "").split(","):
            return _oauth_error("Invalid scope: instagram_business_basic is required")
        back: dict[str, str] = {}
        if self.deny_next_consent:
            self.deny_next_consent = False
            back = {
                "error": "access_denied",
                "error_reason": "user_denied",
                "error_description": "The user denied your request.",
            }
        else:
            code = secrets.token_urlsafe(32)
            self.codes[code] = (redirect, self.consent_account, self.now())
            back["code"] = code
        if "state" in params:
            back["state"] = params["state"]
        return web.Response(status=302, headers={"Location": f"{redirect}?{urlencode(back)}#_"})

    def code_exchange(self, params: dict[str, str]) -> web.Response:
        needed = ("client_id", "client_secret", "grant_type", "redirect_uri", "code")
        absent = [k for k in needed if not params.get(k)]
        if absent:
            return _oauth_error(f"Missing required parameter: {absent[0]}")
        if params["client_id"] != self.app_id or params["client_secret"] != self.app_secret_oauth:
            return _oauth_error("Invalid client_id or client_secret")
        if params["grant_type"] != "authorization_code":
            return _oauth_error("Unsupported grant_type")
        found = self.codes.pop(params["code"], None)
        if found is None or self.now() - found[2] > CODE_SECONDS:
            return _oauth_error("This authorization code has been used or has expired")
        redirect, account, _ = found
        if params["redirect_uri"] != redirect:
            return _oauth_error(
                "Error validating verification code. Please make sure your redirect_uri is"
                " identical to the one you used in the OAuth dialog request"
            )
        short = "IGAA" + secrets.token_urlsafe(40)
        self.tokens[short] = (account, INSTAGRAM)
        self.set_token_life(short, expires_in=SHORT_LIVED_SECONDS)
        answer = {
            "access_token": short,
            "user_id": int(account),
            "permissions": "instagram_business_basic,instagram_business_content_publish",
        }
        return web.json_response({"data": [answer]})

    def long_lived(self, token: str, params: dict[str, str]) -> dict[str, Any]:
        if params.get("grant_type") != "ig_exchange_token":
            raise GraphFault(100, "Unsupported grant_type: expected ig_exchange_token")
        if params.get("client_secret") != self.app_secret_oauth:
            raise GraphFault(101, "Error validating client secret.")
        long = "IGAA" + secrets.token_urlsafe(48)
        self.tokens[long] = self.tokens[token]
        self.set_token_life(long, expires_in=LONG_LIVED_SECONDS)
        return {"access_token": long, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}

    def me(self, account: str, params: dict[str, str]) -> dict[str, Any]:
        full = {"user_id": account, "username": f"fake_{account[-4:]}", "id": f"9{account}"}
        return select(full, params.get("fields", "id"))


def _oauth_error(message: str) -> web.Response:
    body = {"error_type": "OAuthException", "code": 400, "error_message": message}
    return web.json_response(body, status=400)
