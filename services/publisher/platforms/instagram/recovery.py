"""Whether a post whose `media_publish` may have landed is live: the container's status and
the account's recent media, read after an unknown answer, before any new `media_publish` of
a container that may be live, and by the last status read.

A container that reads PUBLISHED, or this job's post in the account's media (one post since
`scheduled_at` with exactly its caption; a caption found twice names no post), means live.
Not live needs both: the container FINISHED, ERROR or EXPIRED, and the media list read
without this job's post in it (Stories and posts without a caption cannot be found there: the
container decides alone). An unreadable container raises (a throttled or unauthorised read
at once: the caller answers `rate_limited` with the wait Graph gave, or `auth_error`); an
unreadable media list leaves the question open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herald.platforms import PublishRequest
from herald.services.publisher.platforms.instagram.client import GraphCallError
from herald.services.publisher.platforms.instagram.errors import ErrorClass
from herald.services.publisher.platforms.instagram.outcomes import media_since
from herald.services.publisher.platforms.instagram.reads import (
    ERROR,
    EXPIRED,
    FINISHED,
    PUBLISHED,
    ContainerStatus,
    GraphReader,
)

STOP_READING = (ErrorClass.RATE_LIMIT, ErrorClass.AUTH)


@dataclass(frozen=True)
class Look:
    status: ContainerStatus  # the container's last status read
    media: dict[str, Any] | None  # this job's post in the account's media
    media_read: bool  # the media list answered (or cannot show this kind of post)
    problem: str = ""  # what could not be read

    @property
    def live(self) -> bool:
        return self.media is not None or self.status.code == PUBLISHED

    @property
    def not_live(self) -> bool:
        settled = self.status.code in (FINISHED, ERROR, EXPIRED)
        return settled and self.media_read and not self.live


def findable(request: PublishRequest) -> bool:
    """Whether the account's media list can show this job's post."""
    return bool(request.caption.strip()) and (request.media_type or "").upper() != "STORIES"


async def look(
    reader: GraphReader,
    request: PublishRequest,
    cid: str,
    *,
    reads: int,
    status: ContainerStatus | None = None,
) -> Look:
    """Read the container (up to ``reads`` times, stopping at a conclusive status; none when
    ``status`` was just read), then, unless it reads PUBLISHED, the account's media. Raises
    GraphCallError when the container cannot be read, or a read is throttled."""
    if status is None:
        status = await reader.settle(cid, reads)
    if status.code == PUBLISHED:
        return Look(status, None, False)
    if not findable(request):
        return Look(status, None, True)
    try:
        media = await reader.find_media(request.caption, media_since(request))
    except GraphCallError as exc:
        if exc.classification.error_class in STOP_READING:
            raise
        return Look(status, None, False, f"media list unreadable: {exc.message}")
    return Look(status, media, True)
