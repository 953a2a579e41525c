"""The last status read for an Instagram job whose outcome is unknown (`check_only`, and the
deadline check of a job with a stored container). Never creates a container, never publishes.

Reads the stored container and the account's media (`instagram_recovery.look`):
- live (the container reads PUBLISHED, or this job's post is in the media) → `published`,
  with the media id and permalink when a unique caption match names them;
- not live (the container reads FINISHED, ERROR or EXPIRED and the media list, read, holds
  no post of this job) → `retryable_error`: the results service ends the job `exhausted`
  (or `missed` past the deadline), never `unconfirmed`, for a post known not to be live;
- a throttled read → `rate_limited` with the wait Graph gave (the read is repeated);
- anything else (no stored container, an unreadable container or media list) → `unconfirmed`.
"""

from __future__ import annotations

import logging

from herald.platforms import AttemptContext, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.instagram.client import GraphCallError, GraphClient
from herald.services.publisher.platforms.instagram.errors import ErrorClass
from herald.services.publisher.platforms.instagram.outcomes import Reporter
from herald.services.publisher.platforms.instagram.reads import READ_TRIES, GraphReader
from herald.services.publisher.platforms.instagram.recovery import look
from herald.services.publisher.platforms.meta.throttle import Throttle


async def confirm_published(
    client: GraphClient,
    reader: GraphReader,
    request: PublishRequest,
    ctx: AttemptContext,
    throttle: Throttle,
) -> PublishOutcome:
    report = Reporter(client, reader, request, reader.account, ctx, throttle)
    cid = ctx.stored_container_id
    if not cid:
        message = "no container was stored for this job: nothing can confirm a post"
        report.log(logging.INFO, f"confirm: {message}")
        return PublishOutcome(Outcome.UNCONFIRMED, error_message=message)
    try:
        seen = await look(reader, request, cid, reads=READ_TRIES)
    except GraphCallError as exc:
        if exc.classification.error_class is ErrorClass.RATE_LIMIT:
            return await report.fail(exc, cid)
        message = f"container {cid} or the account's media unreadable: {exc.message}"
        return await report.fail(exc, cid, Outcome.UNCONFIRMED, message)
    if seen.live:
        return await report.already_published(cid, seen.status, seen.media)
    response = {"container": seen.status.body}
    if seen.not_live:
        message = (
            f"container {cid} reads {seen.status.code} and the account's media show no post of"
            " this job: not published"
        )
        report.log(logging.INFO, f"confirm: {message}", container_id=cid)
        return report.outcome(
            Outcome.RETRYABLE_ERROR, cid, error_message=message, provider_response=response
        )
    message = f"container {cid} reads {seen.status.code}; {seen.problem or 'not conclusive'}"
    report.log(logging.INFO, f"confirm: unconfirmed: {message}", container_id=cid)
    return report.outcome(
        Outcome.UNCONFIRMED, cid, error_message=message, provider_response=response
    )
