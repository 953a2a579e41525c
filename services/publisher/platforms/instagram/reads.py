"""Graph reads for one attempt: container status and polling, permalink, media lookup, quota.

Reads are safe to repeat, so they are retried here (100/33 on a fresh object and transient
errors); a throttled read is never retried (calling a throttled account extends the
throttle). Nothing in this module ever writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.services.publisher.platforms.instagram.client import GraphCallError, GraphClient
from herald.services.publisher.platforms.instagram.errors import (
    DEFAULT_QUOTA_WINDOW_SECONDS,
    Call,
    ErrorClass,
)
from herald.shared.messages.codec import instant_or_none

IN_PROGRESS, FINISHED, PUBLISHED = "IN_PROGRESS", "FINISHED", "PUBLISHED"
ERROR, EXPIRED = "ERROR", "EXPIRED"

FALLBACK_QUOTA_TOTAL = 50.0  # reference §6.1: when content_publishing_limit has no config
READ_TRIES = 3  # a status read is tried this many times
PERMALINK_SECONDS = 5.0  # the permalink reads' bound: best effort, after the post is live
_RETRY_READ = (ErrorClass.RETRY_READ, ErrorClass.TRANSIENT)
_STOP_READING = (ErrorClass.RATE_LIMIT, ErrorClass.AUTH)


@dataclass(frozen=True)
class ContainerStatus:
    code: str
    text: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishingLimit:
    used: float
    total: float
    window_seconds: float
    body: dict[str, Any]

    @property
    def exhausted(self) -> bool:
        return self.used >= self.total


class GraphReader:
    def __init__(
        self, client: GraphClient, account_id: str, *, initial_delay: float, max_delay: float
    ) -> None:
        self.client = client
        self.account = account_id
        self.initial_delay = initial_delay
        self.max_delay = max_delay

    async def read(
        self,
        call: Call,
        node: str,
        fields: str,
        tries: int = READ_TRIES,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """GET a node, retrying the read only."""
        delay = self.initial_delay
        for left in range(tries - 1, -1, -1):
            try:
                return await self.client.get(call, node, {"fields": fields}, timeout=timeout)
            except GraphCallError as exc:
                if exc.classification.error_class not in _RETRY_READ or not left:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def status(self, cid: str, tries: int = READ_TRIES) -> ContainerStatus:
        body = await self.read(Call.CONTAINER_STATUS, cid, "status_code,status", tries)
        return ContainerStatus(
            str(body.get("status_code") or ""), str(body.get("status") or ""), body
        )

    async def wait(self, cid: str, deadline: float) -> ContainerStatus:
        """Poll with backoff until the container leaves IN_PROGRESS or ``deadline`` (loop
        time) passes; the last status read is answered either way."""
        loop = asyncio.get_running_loop()
        interval = self.initial_delay
        while True:
            status = await self.status(cid)
            left = deadline - loop.time()
            if status.code != IN_PROGRESS or left <= 0:
                return status
            await asyncio.sleep(min(interval, left))
            interval = min(interval * 2, self.max_delay)

    async def settle(self, cid: str, reads: int) -> ContainerStatus:
        """After an unknown media_publish answer: up to ``reads`` reads with short backoff,
        stopping at a conclusive status. A throttled (or unauthorised) read raises at once;
        when no read succeeds, the last error is raised."""
        status: ContainerStatus | None = None
        failed: GraphCallError | None = None
        delay = self.initial_delay
        for read in range(max(reads, 1)):
            if read:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
            try:
                status = await self.status(cid, tries=1)
            except GraphCallError as exc:
                if exc.classification.error_class in _STOP_READING:
                    raise
                failed = exc
                continue
            if status.code in (PUBLISHED, ERROR, EXPIRED):
                break
        if status is None:
            assert failed is not None
            raise failed
        return status

    async def permalink(self, media_id: str) -> str:
        """Best effort, within ``PERMALINK_SECONDS`` in all: "" when it does not come."""
        bound = min(self.client.timeout_seconds, PERMALINK_SECONDS)
        try:
            async with asyncio.timeout(PERMALINK_SECONDS):
                body = await self.read(Call.MEDIA_READ, media_id, "permalink", timeout=bound)
        except TimeoutError:
            return ""
        link = body.get("permalink")
        return link if isinstance(link, str) else ""

    async def publishing_limit(self) -> PublishingLimit:
        body = await self.client.get(
            Call.PUBLISHING_LIMIT,
            f"{self.account}/content_publishing_limit",
            {"fields": "config,quota_usage"},
        )
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        config = entry.get("config")
        config = config if isinstance(config, dict) else {}
        return PublishingLimit(
            used=_number(entry.get("quota_usage"), 0.0),
            total=_number(config.get("quota_total"), FALLBACK_QUOTA_TOTAL),
            window_seconds=_number(config.get("quota_duration"), DEFAULT_QUOTA_WINDOW_SECONDS),
            body=body,
        )

    async def find_media(self, caption: str, since: datetime) -> dict[str, Any] | None:
        """The one feed media since ``since`` with exactly this caption; None when there is
        none or several (never a guess: a wrong id would bind another post)."""
        caption = caption.strip()
        if not caption:
            return None
        items = await self._list("media", "id,caption,timestamp,permalink", since)
        matches = [
            m
            for m in items
            if m.get("id")
            and str(m.get("caption") or "").strip() == caption
            and (instant_or_none(m.get("timestamp")) or since) >= since
        ]
        return matches[0] if len(matches) == 1 else None

    async def quota_frees_in(self, window: float) -> float | None:
        """Seconds until the oldest post in the rolling window leaves it, plus a margin (a
        minute per day of window: timestamps are whole seconds, clocks differ). A lower bound
        (the lists may hold posts the quota does not count; a retry that comes too early is
        answered rate_limited again); the whole window when nothing is listed; None when
        neither list can be read (the caller backs off and reads again)."""
        now = datetime.now(UTC)
        since = now - timedelta(seconds=window)
        stamps: list[datetime] = []
        read = False
        for edge in ("media", "stories"):
            try:
                items = await self._list(edge, "id,timestamp", since)
            except GraphCallError:
                continue
            read = True
            stamps += [
                t
                for m in items
                if (t := instant_or_none(m.get("timestamp"))) is not None and t > since
            ]
        if not read:
            return None
        if not stamps:
            return window
        frees = (min(stamps) + timedelta(seconds=window) - now).total_seconds()
        margin = max(1.0, min(60.0, window / 1440))
        return min(max(frees + margin, margin), window)

    async def _list(self, edge: str, fields: str, since: datetime) -> list[dict[str, Any]]:
        params = {"fields": fields, "since": str(int(since.timestamp())), "limit": "100"}
        body = await self.client.get(Call.MEDIA_READ, f"{self.account}/{edge}", params)
        data = body.get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default
