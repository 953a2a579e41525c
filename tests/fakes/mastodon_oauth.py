"""The OAuth part of the fake Mastodon instance (``FakeMastodon`` mixes it in), after
docs.joinmastodon.org (methods/apps, methods/oauth) and Doorkeeper's answers:

- ``apps`` (``POST /api/v1/apps``, form or JSON): ``client_name`` and ``redirect_uris``
  (absolute URIs, space-separated, or the out-of-band URN) required, ``scopes`` known ones
  (default ``read``), else 422; answers the app with its ``client_id`` and ``client_secret``.
- ``authorize`` (``GET /oauth/authorize``, the browser at the consent page): an unknown
  client 401, a redirect URI not registered 400 (an error page: not redirected); else the
  person answers through a redirect to ``redirect_uri`` with ``state``: ``code`` when they
  approve (``deny_next_consent`` makes the next one say no: ``error=access_denied``),
  ``error=unsupported_response_type`` or ``invalid_scope`` (beyond the app's scopes).
- ``token`` (``POST /oauth/token``, form or JSON, the client's id and secret in the body or
  HTTP Basic): 401 ``invalid_client`` for an unknown client or a wrong secret; 400
  ``unsupported_grant_type``, ``invalid_request`` (a missing field), ``invalid_grant`` (a
  code unknown, used, older than 10 minutes, issued to another client or for another
  redirect URI). A code works once; the token answered works on the API for the account.

``forget_apps()`` makes the instance forget every app (an admin removed them).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from tests.fakes.http_fake import Refusal

OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE_LIFE = 600.0
SCOPES = frozenset(
    {"read", "write", "push", "follow", "profile", "read:accounts", "read:statuses"}
    | {"read:notifications", "write:statuses", "write:media", "write:accounts"}
)
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication"
    " included, or unsupported authentication method."
)
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the"
    " redirection URI used in the authorization request, or was issued to another client."
)


@dataclass
class App:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str]
    scopes: list[str]


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    issued_at: float
    used: bool = False


def oauth_error(status: int, error: str, description: str) -> Refusal:
    return Refusal(status, {"error": error, "error_description": description})


class MastodonOAuth:
    """State and calls of the instance's OAuth; mixed in after ``HttpFake``, whose
    ``now()`` (the clock tests move) comes first."""

    def __init__(self) -> None:
        self.apps: dict[str, App] = {}
        self.codes: dict[str, Grant] = {}
        self.issued: set[str] = set()  # access tokens made by sign-ins
        self.deny_next_consent = False

    def now(self) -> float:
        raise NotImplementedError

    def forget_apps(self) -> None:
        self.apps.clear()

    @staticmethod
    def oauth_route(method: str, path: str) -> str | None:
        routes = {
            ("POST", "/api/v1/apps"): "apps",
            ("GET", "/oauth/authorize"): "authorize",
            ("POST", "/oauth/token"): "token",
        }
        return routes.get((method, path))

    def oauth_act(self, call: str, request: web.Request, body: dict[str, Any]) -> Any:
        if call == "apps":
            return self._register(body)
        if call == "authorize":
            return self._authorize(body)
        return self._token(request, body)

    def _register(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("client_name") or "").strip()
        if not name:
            raise Refusal(422, {"error": "Validation failed: Application name can't be blank"})
        raw = body.get("redirect_uris")
        uris = raw if isinstance(raw, list) else str(raw or "").split()
        if not uris:
            raise Refusal(422, {"error": "Validation failed: Redirect URI can't be blank"})
        for uri in uris:
            parts = urlsplit(str(uri))
            if (uri != OOB and not (parts.scheme and parts.netloc)) or parts.fragment:
                raise Refusal(
                    422, {"error": "Validation failed: Redirect URI must be an absolute URI."}
                )
        scopes = str(body.get("scopes") or "read").split()
        if not set(scopes) <= SCOPES:
            raise Refusal(422, {"error": "Validation failed: Scopes is invalid"})
        app = App(secrets.token_urlsafe(32), secrets.token_urlsafe(32), name, uris, scopes)
        self.apps[app.client_id] = app
        return {
            "id": str(len(self.apps)),
            "name": name,
            "website": body.get("website"),
            "scopes": scopes,
            "redirect_uri": "\n".join(uris),
            "redirect_uris": uris,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "client_secret_expires_at": 0,
        }

    def _authorize(self, query: dict[str, Any]) -> web.Response:
        app = self.apps.get(str(query.get("client_id") or ""))
        if app is None:
            raise oauth_error(401, "invalid_client", INVALID_CLIENT)
        redirect_uri = str(query.get("redirect_uri") or "")
        if redirect_uri not in app.redirect_uris:
            message = "The redirect uri included is not valid."
            raise oauth_error(400, "invalid_redirect_uri", message)
        back: dict[str, str] = {}
        scopes = str(query.get("scope") or "read").split()
        if query.get("response_type") != "code":
            back["error"] = "unsupported_response_type"
        elif not set(scopes) <= set(app.scopes):
            back["error"] = "invalid_scope"
        elif self.deny_next_consent:
            self.deny_next_consent = False
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(32)
            self.codes[code] = Grant(app.client_id, redirect_uri, scopes, self.now())
            back["code"] = code
        if "state" in query:
            back["state"] = str(query["state"])
        return web.Response(status=302, headers={"Location": f"{redirect_uri}?{urlencode(back)}"})

    def _token(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        client_id, secret = body.get("client_id"), body.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        app = self.apps.get(str(client_id or ""))
        if app is None or not secrets.compare_digest(str(secret or ""), app.client_secret):
            raise oauth_error(401, "invalid_client", INVALID_CLIENT)
        if body.get("grant_type") != "authorization_code":
            raise oauth_error(
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        if not body.get("code") or not body.get("redirect_uri"):
            raise oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: code or redirect_uri.",
            )
        grant = self.codes.get(str(body["code"]))
        if (
            grant is None
            or grant.used
            or grant.client_id != app.client_id
            or grant.redirect_uri != body["redirect_uri"]
            or self.now() - grant.issued_at > CODE_LIFE
        ):
            raise oauth_error(400, "invalid_grant", INVALID_GRANT)
        grant.used = True
        token = secrets.token_urlsafe(32)
        self.issued.add(token)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
            "created_at": int(self.now()),
        }
