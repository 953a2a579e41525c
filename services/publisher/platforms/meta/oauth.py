"""Token calls of Meta's OAuth endpoints (exchanges, refreshes, a user's Pages): one HTTP
call each, its answer or a clear failure. A refusal that needs a person (an invalid or
expired token or code: 190, 101, 100 on the exchange, 4xx without a throttle code) raises
``AuthLost``; anything else (no answer, 5xx, a throttle) raises ``TokenCallFailed`` and is
retried later. Tokens travel in the ``Authorization`` header or a form, never in a URL, and
never appear in an exception's text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from herald.platforms import AuthLost, Scrubber
from herald.services.publisher.platforms.meta.calls import THROTTLE_CODES
from herald.services.publisher.platforms.meta.graph import ErrorAnswer, GraphTransport, NoAnswer

TIMEOUT_SECONDS = 30.0


class TokenCallFailed(Exception):
    """A token call that may work later (no answer, a server error, a throttle)."""


async def token_call(
    method: str,
    url: str,
    *,
    token: str = "",
    query: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One call to ``url``; ``token`` (if any) as ``Authorization: Bearer``."""
    scrubbers = [Scrubber(s) for s in (token, *secrets) if s]

    def scrub(text: str) -> str:
        for scrubber in scrubbers:
            text = scrubber.text(text)
        return text

    async with aiohttp.ClientSession() as session:
        transport = GraphTransport(session, url, token=token, timeout_seconds=TIMEOUT_SECONDS)
        headers: dict[str, str] | None = None if token else {}
        try:
            return await transport.request(
                method, "", query=query, form=form, timeout=None, url=url, headers=headers
            )
        except NoAnswer as exc:
            raise TokenCallFailed(f"no answer: {scrub(exc.what)}") from None
        except ErrorAnswer as exc:
            error = exc.error
            what = scrub(f"{error.describe()} (code {error.code}, HTTP {error.http_status})")
            status = error.http_status or 0
            if (
                status >= 500
                or status == 429
                or error.code in THROTTLE_CODES
                or error.code in (1, 2)
            ):
                raise TokenCallFailed(what) from None
            raise AuthLost(what) from None


def expiry(body: Mapping[str, Any]) -> datetime | None:
    """When a token answered with ``expires_in`` (seconds) expires; None without one."""
    seconds = body.get("expires_in")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return datetime.now(UTC) + timedelta(seconds=float(seconds))
    return None


def root_of(url: str) -> str:
    """A versioned Graph URL's host (``https://graph.threads.net/v1.0`` → ``…net``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")).rstrip("/")


def access_token(body: Mapping[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenCallFailed("the answer holds no access_token")
    return token
