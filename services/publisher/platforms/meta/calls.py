"""Classified Graph calls for Facebook Pages and Threads: a failed call raises ``CallFailed``
with its class (the codes Meta shares across its Graph APIs, then the platform's own table)
and, for a throttle, how long to wait.

A call the platform names *irreversible* (``/feed``, ``threads_publish``...) that got no
definite answer (timeout, dropped connection, HTTP 5xx, codes 1/2, an unknown error) is
``AMBIGUOUS``: the post may be live, and the caller reads before anything else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from herald.platforms import TRIED_AGAIN, Outcome, PublishOutcome
from herald.services.publisher.platforms.meta.graph import (
    ErrorAnswer,
    GraphError,
    GraphTransport,
    NoAnswer,
)
from herald.services.publisher.platforms.meta.usage import (
    DEFAULT_THROTTLE_SECONDS,
    retry_after_header,
    throttle_seconds,
)


class Kind(StrEnum):
    AUTH = "auth"  # token invalid, expired or permission gone: reconnect
    RATE_LIMIT = "rate_limit"  # a call-rate throttle: wait
    QUOTA = "quota"  # a publishing quota used up: wait for the window
    BLOCKED = "blocked"  # spam or policy block: never retried automatically
    REJECTED = "rejected"  # the media or the text was refused: permanent
    NOT_FOUND = "not_found"  # an object not there (yet): read again, then decide
    TRANSIENT = "transient"  # retry the same call later
    PERMANENT = "permanent"  # bad input or configuration
    AMBIGUOUS = "ambiguous"  # an irreversible call's answer is unknown: the post may be live


OUTCOMES: Mapping[Kind, Outcome] = {
    Kind.AUTH: Outcome.AUTH_ERROR,
    Kind.RATE_LIMIT: Outcome.RATE_LIMITED,
    Kind.QUOTA: Outcome.RATE_LIMITED,
    Kind.BLOCKED: Outcome.BLOCKED,
    Kind.REJECTED: Outcome.PERMANENT_ERROR,
    Kind.NOT_FOUND: Outcome.RETRYABLE_ERROR,
    Kind.TRANSIENT: Outcome.RETRYABLE_ERROR,
    Kind.PERMANENT: Outcome.PERMANENT_ERROR,
    Kind.AMBIGUOUS: Outcome.AMBIGUOUS,
}

# The kinds whose answer the job is tried again after (`TRIED_AGAIN`): an attempt in doubt
# answers them saying the post may be live, so the next attempt looks first.
AGAIN = frozenset(kind for kind, outcome in OUTCOMES.items() if outcome in TRIED_AGAIN)

THROTTLE_CODES = frozenset(
    {4, 17, 32, 341, 613, 80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014}
)
# What every Meta Graph API means by these codes (the platforms add their own first).
COMMON_CODES: Mapping[int, tuple[Kind, str]] = {
    190: (Kind.AUTH, "access token invalid or expired"),
    102: (Kind.AUTH, "API session invalid"),
    10: (Kind.AUTH, "permission not granted or removed"),
    **{c: (Kind.AUTH, "permission not granted or removed") for c in range(200, 300)},
    **{c: (Kind.RATE_LIMIT, "rate limited") for c in THROTTLE_CODES},
    368: (Kind.BLOCKED, "temporarily blocked for policy violations"),
    1: (Kind.TRANSIENT, "unknown error, possibly downtime"),
    2: (Kind.TRANSIENT, "temporary service error"),
    100: (Kind.PERMANENT, "invalid parameter"),
}
DEFAULT_QUOTA_SECONDS = 3_600.0  # when the quota's window cannot be read

# (call, error) → (kind, meaning), or None for "not in the platform's table".
Classifier = Callable[[str, GraphError], tuple[Kind, str] | None]


class CallFailed(Exception):
    """A classified failure of one call."""

    def __init__(
        self,
        call: str,
        kind: Kind,
        meaning: str,
        error: GraphError | None = None,
        transport: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(meaning)
        self.call, self.kind, self.meaning = call, kind, meaning
        self.error, self.transport, self.retry_after = error, transport, retry_after

    @property
    def message(self) -> str:
        if self.error is not None:
            return f"{self.call}: {self.error.describe()} ({self.meaning})"
        return f"{self.call}: {self.transport or 'no answer'} ({self.meaning})"

    def response(self) -> dict[str, Any]:
        """The provider's answer for the attempt row (scrubbed by the transport already)."""
        if self.error is None:
            return {"call": self.call, "transport_error": self.transport}
        return {"call": self.call, "http_status": self.error.http_status, "body": self.error.body}

    def outcome(self, **extra: Any) -> PublishOutcome:
        error = self.error
        return PublishOutcome(
            OUTCOMES[self.kind],
            error_code=error.code if error is not None else None,
            error_subcode=error.subcode if error is not None else None,
            error_message=self.message,
            retry_after_seconds=self.retry_after,
            provider_response=self.response(),
            **extra,
        )


@dataclass
class Caller:
    """A Graph transport whose failures come back classified."""

    transport: GraphTransport
    classify: Classifier
    irreversible: frozenset[str]
    account_id: str
    # Told every throttle answer's wait (the shared throttle pauses the account).
    on_throttle: Callable[[float], Awaitable[None]] | None = None

    async def get(self, call: str, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return await self.transport.get(path, params)
        except (NoAnswer, ErrorAnswer) as exc:
            raise await self._failed(call, exc) from None

    async def post(
        self,
        call: str,
        path: str,
        params: Mapping[str, str],
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            if url is None:
                return await self.transport.post(path, params)
            return await self.transport.request(
                "POST", path, query=None, form=params, timeout=None, url=url, headers=headers
            )
        except (NoAnswer, ErrorAnswer) as exc:
            raise await self._failed(call, exc) from None

    async def _failed(self, call: str, exc: NoAnswer | ErrorAnswer) -> CallFailed:
        failed = self.failure(call, exc)
        if failed.kind is Kind.RATE_LIMIT and self.on_throttle is not None:
            await self.on_throttle(failed.retry_after or DEFAULT_THROTTLE_SECONDS)
        return failed

    def failure(self, call: str, exc: NoAnswer | ErrorAnswer) -> CallFailed:
        sure = call not in self.irreversible
        if isinstance(exc, NoAnswer):
            kind = Kind.TRANSIENT if sure else Kind.AMBIGUOUS
            return CallFailed(call, kind, f"no answer ({exc.what})", transport=exc.what)
        error = exc.error
        found = self.classify(call, error) or (
            COMMON_CODES.get(error.code) if error.code is not None else None
        )
        kind, meaning = found or _fallback(error)
        unsure = found is None or kind is Kind.TRANSIENT or (error.http_status or 0) >= 500
        if not sure and unsure and kind is not Kind.RATE_LIMIT:
            kind, meaning = Kind.AMBIGUOUS, f"answer unknown ({meaning})"
        wait = None
        if kind is Kind.RATE_LIMIT:
            wait = (
                throttle_seconds(exc.headers, self.account_id)
                or retry_after_header(exc.headers)
                or DEFAULT_THROTTLE_SECONDS
            )
        elif kind is Kind.QUOTA:
            wait = DEFAULT_QUOTA_SECONDS
        return CallFailed(call, kind, meaning, error=error, retry_after=wait)


def _fallback(error: GraphError) -> tuple[Kind, str]:
    status = error.http_status or 0
    if status == 429:
        return Kind.RATE_LIMIT, "HTTP 429"
    if error.is_transient or status >= 500:
        return Kind.TRANSIENT, f"transient (HTTP {status})"
    if error.code is None and error.code_name is None:
        return Kind.TRANSIENT, f"unparseable answer (HTTP {status})"
    return Kind.PERMANENT, f"unknown error {error.code or error.code_name}"
