"""A thin Graph API caller for one attempt (token handling, timeouts, error capture,
scrubbing), and the throttle state the attempts of one publisher share (usage headers).

The access token travels as the ``access_token`` query parameter (GET) or form field (POST),
as Graph expects. Every error message and error body handed back is scrubbed of it (raw and
URL-encoded); successful answers carry ids only and are handed back as they came.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from services.publisher.platforms.instagram_errors import (
    DEFAULT_THROTTLE_SECONDS,
    USAGE_STOP_PERCENT,
    Call,
    Classification,
    GraphError,
    classify,
    classify_transport,
    parse_usage,
)
from services.publisher.scrub import Scrubber

NEAR_LIMIT_PAUSE_SECONDS = 60.0  # usage headers at >= 90 %: stop calling for a while
APP_WIDE = "__app__"  # throttle key for app-wide limits (code 4, X-App-Usage)


class GraphCallError(Exception):
    """A Graph call that failed: either an error answer or no answer at all."""

    def __init__(
        self,
        call: Call,
        classification: Classification,
        error: GraphError | None,
        transport: str | None = None,
    ) -> None:
        super().__init__(classification.rule)
        self.call = call
        self.classification = classification
        self.error = error
        self.transport = transport

    @property
    def message(self) -> str:
        if self.error is not None:
            return self.error.describe()
        return f"{self.call.value}: {self.transport or 'no answer'}"

    def response(self) -> dict[str, Any]:
        """The provider's answer for the attempt row (scrubbed by the client already)."""
        if self.error is None:
            return {"call": self.call.value, "transport_error": self.transport}
        return {
            "call": self.call.value,
            "http_status": self.error.http_status,
            "body": self.error.body,
        }


HeadersHook = Callable[[Mapping[str, str]], None]


class GraphClient:
    """Calls Graph under ``base_url`` (version included) with one account's token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        token: str,
        account_id: str,
        timeout_seconds: float,
        on_headers: HeadersHook | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._token = token
        self._account_id = account_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._on_headers = on_headers
        self.scrub = Scrubber(token)

    async def get(self, call: Call, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        query = {**params, "access_token": self._token}
        return await self._request(call, "GET", path, query=query, form=None)

    async def post(self, call: Call, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        form = {**params, "access_token": self._token}
        return await self._request(call, "POST", path, query=None, form=form)

    async def _request(
        self,
        call: Call,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        url = f"{self._base}/{path.lstrip('/')}"
        try:
            async with self._session.request(
                method, url, params=query, data=form, timeout=self._timeout
            ) as resp:
                headers: Mapping[str, str] = resp.headers
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            timeout = classify_transport(call, "timeout")
            raise GraphCallError(call, timeout, None, "timeout") from None
        except aiohttp.ClientError as exc:
            what = self.scrub.text(f"{type(exc).__name__}: {exc}")
            raise GraphCallError(call, classify_transport(call, what), None, what) from None
        if self._on_headers is not None:
            self._on_headers(headers)
        body = _decode(raw)
        if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
            return body  # ids and fields, never scrubbed
        error = GraphError.parse(status, self.scrub.document(body))  # the free text is scrubbed
        classification = classify(call, error, headers, self._account_id)
        raise GraphCallError(call, classification, error)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:300].decode("utf-8", errors="replace")


class Throttle:
    """When calls may resume, per IG account and app-wide (usage headers, rate-limit answers)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def paused_for(self, account_id: str) -> float:
        until = max(self._until.get(account_id, 0.0), self._until.get(APP_WIDE, 0.0))
        return max(until - time.monotonic(), 0.0)

    def pause(self, key: str, seconds: float) -> None:
        self._until[key] = max(self._until.get(key, 0.0), time.monotonic() + seconds)

    def note_usage(self, account_id: str, headers: Mapping[str, str]) -> None:
        """Stop calling at >= 90 % usage (reference §10), for the BUC estimate when given."""
        usage = parse_usage(headers, account_id)
        if usage.regain_seconds or usage.account_percent >= USAGE_STOP_PERCENT:
            self.pause(account_id, usage.regain_seconds or NEAR_LIMIT_PAUSE_SECONDS)
        if usage.app_percent >= USAGE_STOP_PERCENT:
            full = usage.app_percent >= 100.0
            self.pause(APP_WIDE, DEFAULT_THROTTLE_SECONDS if full else NEAR_LIMIT_PAUSE_SECONDS)
