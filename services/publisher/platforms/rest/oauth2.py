"""OAuth 2 tokens (LinkedIn, X; Mastodon's exchange): the code exchange and the refresh.

A connection holds one encrypted token; for these platforms it is the access token and,
when the platform issued one, the refresh token, packed as ``<access>|<refresh>`` (neither
platform uses ``|`` in a token). A refresh that rotates the refresh token (X: each one is
single-use) stores the new pair in the same write as the new access token, so the stored
pair is always the latest. The publisher sends only the access part.

A refusal from the token endpoint (400/401: a revoked, expired or already used refresh
token, a bad code) raises ``AuthLost`` (``AppForgotten`` for ``invalid_client``: the
endpoint does not know the app); no answer, 429 or 5xx raises ``TokenCallFailed``
and the token keeper tries again later. Tokens and the client secret never appear in an
exception's text.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.platforms import AppForgotten, AuthLost, IssuedToken, Scrubber
from herald.services.publisher.platforms.rest.calls import Client, NoAnswer

SEPARATOR = "|"
TIMEOUT_SECONDS = 30.0


class TokenCallFailed(Exception):
    """A token call that may work later (no answer, 429, 5xx)."""


def pack(access: str, refresh: str | None) -> str:
    return f"{access}{SEPARATOR}{refresh}" if refresh else access


def unpack(token: str) -> tuple[str, str | None]:
    """The access token and the refresh token (None when the connection holds none)."""
    access, sep, refresh = token.partition(SEPARATOR)
    return access, (refresh if sep and refresh else None)


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def token_call(
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
    now: datetime | None = None,
) -> IssuedToken:
    """POST ``form`` to the token endpoint; the answer's ``access_token``,
    ``refresh_token`` (kept when absent: LinkedIn does not always rotate) and
    ``expires_in``."""
    scrubbers = [Scrubber(s) for s in secrets if s]

    def scrub(text: str) -> str:
        for scrubber in scrubbers:
            text = scrubber.text(text)
        return text

    client = Client()
    try:
        answer = await client.call(
            "POST", url, timeout=TIMEOUT_SECONDS, headers=headers, data=dict(form)
        )
    except NoAnswer as lost:
        raise TokenCallFailed(f"token endpoint: {scrub(lost.what)}") from None
    finally:
        await client.close()
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.status in (400, 401, 403):
        reason = body.get("error_description") or body.get("error") or body.get("message")
        refused = AppForgotten if body.get("error") == "invalid_client" else AuthLost
        raise refused(scrub(f"token endpoint refused (HTTP {answer.status}): {reason}"))
    access = body.get("access_token")
    if answer.status != 200 or not isinstance(access, str) or not access:
        raise TokenCallFailed(f"token endpoint answered HTTP {answer.status} without a token")
    refresh = body.get("refresh_token")
    refresh = refresh if isinstance(refresh, str) and refresh else form.get("refresh_token")
    expires = body.get("expires_in")
    at = None
    if isinstance(expires, int | float) and expires > 0:
        at = (now or datetime.now(UTC)) + timedelta(seconds=float(expires))
    return IssuedToken(pack(access, refresh), at)


async def account(url: str, access: str, what: str) -> dict[str, Any]:
    """The signed-in account, read with the new access token (``what``: for messages)."""
    client = Client()
    try:
        answer = await client.call("GET", url, timeout=TIMEOUT_SECONDS, token=access)
    except NoAnswer as lost:
        raise TokenCallFailed(f"{what}: {Scrubber(access).text(lost.what)}") from None
    finally:
        await client.close()
    if answer.status != 200 or not isinstance(answer.body, dict):
        raise AuthLost(f"{what} answered HTTP {answer.status}")
    return answer.body
