"""One HTTP call to a connection's host, answered as ``Answer`` (any status) or raising
``NoAnswer`` (timeout, dropped connection, refused host): for a create, ``NoAnswer`` means
the post may be live."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import yarl

from herald.platforms import (
    HostRefused,
    Media,
    MediaRefused,
    MediaUnavailable,
    Outcome,
    PublishOutcome,
    check_scheme,
    fetch_media,
    public_session,
)

DEFAULT_WAIT = 60.0
MEDIA_TIMEOUT = 30.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any

    def field(self, key: str) -> str:
        """A string field of a JSON object body ('' when absent)."""
        value = self.body.get(key) if isinstance(self.body, dict) else None
        return value if isinstance(value, str) else ""


class Failed(Exception):
    """A call's failure, classified as the attempt's outcome (with the answer, if any, and
    the wait the rate-limit headers gave)."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        answer: Answer | None = None,
        wait: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.message, self.answer, self.wait = outcome, message, answer, wait

    def outcome(self, **extra: Any) -> PublishOutcome:
        response = None
        if self.answer is not None:
            response = {"http_status": self.answer.status, "body": self.answer.body}
        return PublishOutcome(
            self.kind,
            error_message=self.message,
            retry_after_seconds=self.wait,
            provider_response=response,
            **extra,
        )


class NoAnswer(Exception):
    """The host gave no answer (the call may have taken effect)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Client:
    """A lazily opened session to public hosts, shared by a publisher's calls."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = public_session()
        return self._session

    async def call(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        encoded: bool = False,
        **kwargs: Any,
    ) -> Answer:
        """``kwargs`` go to aiohttp (``json``, ``data``, ``params``); ``encoded``: the URL is
        sent as written (its percent-escapes kept, as a urn in a path must be)."""
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            check_scheme(url)
            limit = aiohttp.ClientTimeout(total=timeout)
            target = yarl.URL(url, encoded=True) if encoded else url
            async with self.session.request(
                method, target, headers=sent, timeout=limit, allow_redirects=False, **kwargs
            ) as response:
                try:
                    body: Any = await response.json(content_type=None)
                except ValueError:
                    body = None
                return Answer(response.status, dict(response.headers), body)
        except HostRefused as exc:
            raise NoAnswer(f"host refused: {exc}") from None
        except TimeoutError:
            raise NoAnswer(f"no answer within {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from None

    async def media(self, url: str, *, max_bytes: int) -> Media:
        """One asset, from a public https host, capped (MediaRefused / MediaUnavailable)."""
        return await fetch_media(
            self.session, url, max_bytes=max_bytes, timeout_seconds=MEDIA_TIMEOUT
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def wait_seconds(headers: Mapping[str, str], now: float | None = None) -> float:
    """How long the rate-limit headers say to wait: ``Retry-After`` (seconds or an HTTP
    date), then a reset time (``RateLimit-Reset`` / ``x-rate-limit-reset`` in epoch seconds,
    Mastodon's ``X-RateLimit-Reset`` an ISO 8601 time). At least 1 s."""
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    after = lower.get("retry-after")
    if after:
        try:
            return max(float(after), 1.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(after).timestamp() - now, 1.0)
            except (TypeError, ValueError):
                pass
    for key in ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset"):
        value = lower.get(key)
        if not value:
            continue
        try:
            at = float(value)
        except ValueError:
            try:
                at = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
        if at < 1e9:  # a number of seconds, not a time
            return max(at, 1.0)
        return max(at - now, 1.0)
    return DEFAULT_WAIT


__all__ = ["Answer", "Client", "MediaRefused", "MediaUnavailable", "NoAnswer", "wait_seconds"]


def refused_host(url: str, key: str) -> PublishOutcome | None:
    """A permanent error when the connection's host (metadata ``key``) is not a public
    https URL (checked again before every attempt; its names at every connection)."""
    try:
        check_scheme(url)
    except HostRefused as exc:
        message = f"metadata.{key} {exc}: Herald calls public https hosts only"
        return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    return None
