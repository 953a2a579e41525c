"""LinkedIn's REST API as the publisher calls it: every call carries the pinned
``LinkedIn-Version`` and ``X-Restli-Protocol-Version: 2.0.0``; error answers
(``{status, serviceErrorCode, code, message}``) are classified once, here.

| answer | outcome |
|---|---|
| 401 (65600 invalid, 65601 revoked) | ``auth_error`` (the connection needs a new sign-in) |
| 403 ``ACCESS_DENIED`` | ``permanent_error`` (scope or page role) |
| 400, 404, 422 | ``permanent_error`` (422 ``DUPLICATE_POST`` is read by the caller) |
| 426 ``NONEXISTENT_VERSION`` | ``permanent_error``: ``HERALD_LINKEDIN_VERSION`` is sunset |
| 429 | ``rate_limited``: ``Retry-After`` when given, else a minute (quotas reset 00:00 UTC) |
| 5xx, no answer | ``Unknown``: on a create the post may be live |
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from herald.platforms import Outcome, PublishOutcome, Scrubber
from herald.services.publisher.platforms.rest.calls import Answer, Client, NoAnswer, wait_seconds
from herald.services.publisher.platforms.rest.readback import Refused, Unknown

RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
DUPLICATE = re.compile(r"duplicate of (urn:li:[a-zA-Z]+:[0-9A-Za-z_-]+)")


def little(text: str) -> str:
    """``commentary`` in LinkedIn's "little" text format: every reserved character escaped
    (an unescaped one silently truncates the post)."""
    return RESERVED.sub(r"\\\1", text)


class Api:
    def __init__(self, client: Client, base: str, version: str, token: str, timeout: float) -> None:
        self.client, self.base, self.version = client, base.rstrip("/"), version
        self.token, self.timeout = token, timeout
        self.scrub = Scrubber(token)

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        headers = {"LinkedIn-Version": self.version, "X-Restli-Protocol-Version": "2.0.0"}
        try:
            answer = await self.client.call(
                method,
                f"{self.base}{path}",
                timeout=self.timeout,
                token=self.token,
                headers=headers,
                **kwargs,
            )
        except NoAnswer as lost:
            raise Unknown(self.scrub.text(lost.what)) from None
        if answer.status >= 400:
            raise classify(answer, self.scrub)
        return answer

    async def put(
        self, url: str, data: bytes, content_type: str, *, timeout: float = 0.0
    ) -> Answer:
        """Bytes in one PUT to an upload URL: an image's whole file (chunks would keep only
        the last), or one part of a video (the answer's ``ETag`` names it)."""
        try:
            answer = await self.client.call(
                "PUT",
                url,
                timeout=max(self.timeout, timeout),
                token=self.token,
                headers={"Content-Type": content_type},
                data=data,
            )
        except NoAnswer as lost:  # media is not a post: upload it again next time
            raise Refused(_outcome(Outcome.RETRYABLE_ERROR, f"media upload: {lost.what}")) from None
        if answer.status >= 400:
            raise classify(answer, self.scrub)
        return answer

    async def recent(self, author: str, count: int = 20) -> list[dict[str, Any]]:
        """The author's newest posts (needs r_member_social / r_organization_social)."""
        query = f"?q=author&author={quote(author, safe='')}&count={count}&sortBy=CREATED"
        answer = await self.call("GET", f"/rest/posts{query}")
        elements = answer.body.get("elements") if isinstance(answer.body, dict) else None
        return [e for e in elements or [] if isinstance(e, dict)]


def classify(answer: Answer, scrub: Scrubber) -> Refused | Unknown:
    body = answer.body if isinstance(answer.body, dict) else {}
    message = scrub.text(str(body.get("message") or f"HTTP {answer.status}"))
    code = body.get("serviceErrorCode")
    code = code if isinstance(code, int) else None
    status = answer.status
    if status >= 500:
        return Unknown(f"LinkedIn answered HTTP {status}: {message}")
    if status == 401:
        return Refused(_outcome(Outcome.AUTH_ERROR, message, code))
    if status == 429:
        wait = wait_seconds(answer.headers) if "retry-after" in _lower(answer) else 60.0
        return Refused(
            PublishOutcome(
                Outcome.RATE_LIMITED,
                error_code=429,
                error_message=f"LinkedIn throttled the call: {message}",
                retry_after_seconds=wait,
            )
        )
    if status == 426:
        message = f"{message}: set HERALD_LINKEDIN_VERSION to an active version (YYYYMM)"
    return Refused(_outcome(Outcome.PERMANENT_ERROR, message, code or status))


def duplicate_of(refused: Refused) -> str | None:
    """The existing post a 422 ``DUPLICATE_POST`` names."""
    found = DUPLICATE.search(refused.outcome.error_message or "")
    return found.group(1) if found else None


def _lower(answer: Answer) -> set[str]:
    return {k.lower() for k in answer.headers}


def _outcome(outcome: Outcome, message: str, code: int | None = None) -> PublishOutcome:
    return PublishOutcome(outcome, error_code=code, error_message=message)
