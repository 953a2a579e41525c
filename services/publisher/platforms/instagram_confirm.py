"""The last status read for an Instagram job whose outcome is unknown (`check_only`).

Reads the stored container's `status_code`: `PUBLISHED` → `published` (with the media id and
permalink when a unique caption match finds them), anything else, an unreadable container or
no stored container → `unconfirmed`. Never creates a container and never publishes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.publisher.platforms.base import AttemptContext
from services.publisher.platforms.instagram_client import GraphCallError, GraphClient
from services.publisher.platforms.instagram_reads import PUBLISHED, GraphReader, parse_time
from shared.domain.outcomes import Outcome, PublishOutcome
from shared.domain.requests import PublishRequest

logger = logging.getLogger(__name__)


async def confirm_published(
    client: GraphClient,
    reader: GraphReader,
    request: PublishRequest,
    ctx: AttemptContext,
) -> PublishOutcome:
    cid = ctx.stored_container_id
    extra = {"job_id": request.job_id, "attempt": request.attempt, "container_id": cid}
    if not cid:
        message = "no container was stored for this job: nothing can confirm a post"
        logger.info("instagram confirm: %s", message, extra=extra)
        return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)
    ids = {"container_id": cid}
    try:
        status = await reader.status(cid)
    except GraphCallError as exc:
        code, subcode = (exc.error.code, exc.error.subcode) if exc.error else (None, None)
        message = f"status of container {cid} unreadable: {exc.message}"
        logger.warning("instagram confirm: %s", message, extra=extra)
        return PublishOutcome(
            Outcome.UNCONFIRMED,
            error_code=code,
            error_subcode=subcode,
            error_message=message,
            provider_ids=ids,
            provider_response=exc.response(),
        )
    if status.code != PUBLISHED:
        message = f"container {cid} is {status.code or 'of unknown status'}, not PUBLISHED"
        logger.info("instagram confirm: %s", message, extra=extra)
        return PublishOutcome(
            Outcome.UNCONFIRMED,
            error_message=message,
            provider_ids=ids,
            provider_response={"container": status.body},
        )
    published_at = datetime.now(UTC)
    if (request.media_type or "").upper() != "STORIES":
        since = request.scheduled_at - timedelta(minutes=5)
        try:
            media = await reader.find_media(request.caption, since)
        except GraphCallError as exc:  # best effort: the container already proves the post
            logger.info("instagram confirm: media list unreadable: %s", exc.message, extra=extra)
            media = None
        if media is not None:
            ids["media_id"] = str(media["id"])
            if isinstance(media.get("permalink"), str):
                ids["permalink"] = media["permalink"]
            published_at = parse_time(media.get("timestamp")) or published_at
    logger.info("instagram confirm: the container is PUBLISHED", extra=extra)
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids=ids,
        published_at=published_at,
        provider_response={"container": status.body},
    )
