"""Mastodon sign-in, per instance: Herald's app registered on the instance
(``POST /api/v1/apps``, once: Herald keeps it), the consent page (``GET /oauth/authorize``),
the code exchanged at ``POST /oauth/token`` (``grant_type=authorization_code``) and the
account's id from ``verify_credentials``. Tokens do not expire; a refresh token, if an
instance issues one, is not kept (Herald does not refresh Mastodon tokens). A token
endpoint that answers 401 ``invalid_client`` has forgotten the app (``AppForgotten``)."""

from __future__ import annotations

from urllib.parse import urlencode

from herald.platforms import AuthLost, IssuedToken, OAuthApp
from herald.services.publisher.platforms.rest.calls import Client, NoAnswer
from herald.services.publisher.platforms.rest.oauth2 import (
    TIMEOUT_SECONDS,
    TokenCallFailed,
    account,
    token_call,
    unpack,
)

SCOPES = "write:statuses write:media read:accounts read:statuses"
APP_NAME = "Herald"


async def register_app(host: str, redirect_uri: str) -> OAuthApp:
    form = {"client_name": APP_NAME, "redirect_uris": redirect_uri, "scopes": SCOPES}
    client = Client()
    try:
        answer = await client.call(
            "POST", f"{host}/api/v1/apps", timeout=TIMEOUT_SECONDS, data=form
        )
    except NoAnswer as lost:
        raise TokenCallFailed(f"{host}/api/v1/apps: {lost.what}") from None
    finally:
        await client.close()
    body = answer.body if isinstance(answer.body, dict) else {}
    client_id, secret = body.get("client_id"), body.get("client_secret")
    made = isinstance(client_id, str) and isinstance(secret, str) and client_id and secret
    if answer.status == 200 and made:
        return OAuthApp(str(client_id), str(secret))
    if 400 <= answer.status < 500 and answer.status != 429:
        raise AuthLost(f"{host} refused the app (HTTP {answer.status}): {body.get('error')}")
    raise TokenCallFailed(f"{host}/api/v1/apps answered HTTP {answer.status} without an app")


def consent_url(host: str, app: OAuthApp, *, state: str, redirect_uri: str) -> str:
    query = {
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": SCOPES,
        "state": state,
    }
    return f"{host}/oauth/authorize?{urlencode(query)}"


async def exchange(host: str, app: OAuthApp, *, code: str, redirect_uri: str) -> IssuedToken:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": redirect_uri,
        "scope": SCOPES,
    }
    issued = await token_call(f"{host}/oauth/token", form, secrets=(app.client_secret, code))
    access, _ = unpack(issued.access_token)
    me = await account(f"{host}/api/v1/accounts/verify_credentials", access, "verify_credentials")
    account_id = me.get("id")
    if not isinstance(account_id, str) or not account_id:
        raise AuthLost(f"{host}'s verify_credentials answered no account id")
    metadata = {"instanceUrl": host, "accountId": account_id}
    return IssuedToken(access, issued.expires_at, metadata=metadata)
