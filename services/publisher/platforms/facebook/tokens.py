"""Facebook Page tokens through the OAuth sign-in: the consent page, then code → short-lived
user token → long-lived user token (``fb_exchange_token``, about 60 days) → the Page token
from ``/me/accounts``. A Page token taken from a long-lived user token has no expiry date, so
it is stored without one and never refreshed; when it stops working (a password change, a
lost Page role), its connection is held until someone signs in again, which derives a new one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from herald.platforms import AuthLost, IssuedToken
from herald.services.publisher.platforms.meta.oauth import access_token, token_call

SCOPES = "pages_show_list,pages_manage_posts,pages_read_engagement,pages_read_user_content"


def _app(settings: Any) -> tuple[str, str]:
    app_id, secret = settings.meta_app_id, settings.meta_app_secret
    if not app_id or secret is None:
        raise RuntimeError("HERALD_META_APP_ID and HERALD_META_APP_SECRET are not set")
    return str(app_id), str(secret.get_secret_value())


def consent_url(settings: Any, *, state: str, redirect_uri: str) -> str:
    app_id, _ = _app(settings)
    query = {"client_id": app_id, "redirect_uri": redirect_uri, "state": state, "scope": SCOPES}
    return f"{settings.facebook_authorize_url}?{urlencode(query)}"


async def page_token_from_code(
    settings: Any, *, code: str, redirect_uri: str, page: Any = None
) -> IssuedToken:
    """The Page token of the Page ``page`` (the sign-in was started for it, or the connection
    being re-authorised names it), else of the first Page the user may create content on."""
    app_id, secret = _app(settings)
    graph = settings.facebook_graph_url.rstrip("/")
    client = {"client_id": app_id, "client_secret": secret}
    form = {**client, "code": code, "redirect_uri": redirect_uri}
    short = await token_call("POST", f"{graph}/oauth/access_token", form=form, secrets=(secret,))
    grant = {**client, "grant_type": "fb_exchange_token", "fb_exchange_token": access_token(short)}
    long = await token_call(
        "POST",
        f"{graph}/oauth/access_token",
        form=grant,
        secrets=(secret, grant["fb_exchange_token"]),
    )
    user_token = access_token(long)
    pages = await token_call("GET", f"{graph}/me/accounts", token=user_token)
    for found in pages.get("data") or []:
        if not isinstance(found, dict) or "CREATE_CONTENT" not in (found.get("tasks") or []):
            continue
        if page and str(found.get("id")) != str(page):
            continue
        metadata = {"pageId": str(found.get("id")), "pageName": str(found.get("name") or "")}
        return IssuedToken(access_token(found), None, metadata=metadata)  # no expiry date
    which = f"the Page {page}" if page else "any of their Pages"
    raise AuthLost(f"the signed-in user may not create content on {which}")
