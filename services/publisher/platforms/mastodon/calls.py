"""Mastodon REST calls for one connection, classified: the instance's limits
(``/api/v2/instance``, cached an hour per instance), the account's id and its recent
statuses (to find a job's post), and what an error answer means."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from herald.platforms import Connection, Outcome
from herald.services.publisher.platforms.rest import calls as rest
from herald.services.publisher.platforms.rest.calls import Answer, Client, wait_seconds

INSTANCE_TTL = 3600.0
URL = re.compile(r"https?://\S+")
TAGS = re.compile(r"<[^>]+>")
FIND_LIMIT = 40
NOT_READY = "not finished processing"


class Failed(rest.Failed):
    @property
    def not_ready(self) -> bool:
        return self.answer is not None and NOT_READY in self.answer.field("error")


def failure(call: str, answer: Answer) -> Failed:
    status = answer.status
    what = f"{call}: HTTP {status} {answer.field('error')}".rstrip()
    if status == 429:
        return Failed(Outcome.RATE_LIMITED, what, answer, wait_seconds(answer.headers))
    if status in (401, 403):
        return Failed(Outcome.AUTH_ERROR, what, answer)
    if status >= 500 or status == 408:
        return Failed(Outcome.RETRYABLE_ERROR, what, answer)
    return Failed(Outcome.PERMANENT_ERROR, what, answer)


@dataclass(frozen=True)
class Limits:
    max_characters: int = 500
    url_characters: int = 23
    max_media: int = 4
    image_bytes: int = 16 * 1024 * 1024
    video_bytes: int = 99 * 1024 * 1024

    def length(self, text: str) -> int:
        return len(URL.sub("x" * self.url_characters, text))

    @classmethod
    def of(cls, body: Any) -> Limits:
        config = body.get("configuration", {}) if isinstance(body, dict) else {}
        statuses, media = config.get("statuses", {}), config.get("media_attachments", {})

        def num(section: dict[str, Any], key: str, default: int) -> int:
            value = section.get(key) if isinstance(section, dict) else None
            return value if isinstance(value, int) and value > 0 else default

        d = cls()
        return cls(
            num(statuses, "max_characters", d.max_characters),
            num(statuses, "characters_reserved_per_url", d.url_characters),
            num(statuses, "max_media_attachments", d.max_media),
            num(media, "image_size_limit", d.image_bytes),
            num(media, "video_size_limit", d.video_bytes),
        )


def plain(content: str) -> str:
    """A status's HTML content as comparable text: tags dropped, entities decoded, no
    whitespace (paragraphs and line breaks become nothing on both sides)."""
    return re.sub(r"\s+", "", html.unescape(TAGS.sub(" ", content)))


class Api:
    def __init__(
        self,
        client: Client,
        connection: Connection,
        timeout: float,
        instances: dict[str, tuple[float, Limits]],
        accounts: dict[str, str],
    ) -> None:
        self.client, self.timeout = client, timeout
        self.base = str(connection.metadata.get("instanceUrl") or "").rstrip("/")
        self.token, self.key = connection.access_token, connection.id
        self.instances, self.accounts = instances, accounts

    async def call(self, method: str, path: str, name: str, **kwargs: Any) -> Answer:
        """200/202/206 answered; other statuses raise Failed; NoAnswer passes through."""
        answer = await self.client.call(
            method, self.base + path, timeout=self.timeout, token=self.token, **kwargs
        )
        if answer.status not in (200, 202, 206):
            raise failure(name, answer)
        return answer

    async def limits(self) -> Limits:
        cached = self.instances.get(self.base)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        limits = Limits.of((await self.call("GET", "/api/v2/instance", "instance")).body)
        self.instances[self.base] = (time.monotonic() + INSTANCE_TTL, limits)
        return limits

    async def account(self) -> str:
        found = self.accounts.get(self.key)
        if found is None:
            answer = await self.call("GET", "/api/v1/accounts/verify_credentials", "verify")
            found = answer.field("id")
            if not found:
                raise Failed(Outcome.RETRYABLE_ERROR, "verify_credentials answered no id")
            self.accounts[self.key] = found
        return found

    async def find(self, text: str, since: datetime) -> dict[str, Any] | None:
        """The account's status with this text created since ``since`` (newest first)."""
        path = f"/api/v1/accounts/{await self.account()}/statuses"
        params = {"limit": str(FIND_LIMIT), "exclude_reblogs": "true"}
        answer = await self.call("GET", path, "statuses", params=params)
        want = plain(html.escape(text))
        floor = since - timedelta(minutes=10)
        for status in answer.body if isinstance(answer.body, list) else []:
            try:
                at = datetime.fromisoformat(str(status.get("created_at")).replace("Z", "+00:00"))
            except ValueError:
                continue
            if at >= floor and plain(str(status.get("content", ""))) == want:
                return dict(status)
        return None
