"""Never twice without an idempotency key (LinkedIn, X): the account's recent posts are the
only record of whether a create went through.

``post_once`` runs one attempt: when an earlier attempt may have posted (it ended
ambiguous, or its worker died holding the claim), the account's posts are read for the
job's text first, and a post found ends the attempt ``published``; a read that fails ends it
``ambiguous`` (never a blind create). Then the media are uploaded, their ids stored durably
(``remember_children``) before the irreversible call, the claim is confirmed, and the post
is created once. A create without a definite answer (no answer, 5xx) is read back at once;
a post found is ``published``, none found is ``ambiguous``, and the next attempt reads
again before it creates anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from herald.platforms import TRIED_AGAIN, AttemptContext, Outcome, PublishOutcome


class Refused(Exception):
    """Ends the attempt with this outcome (an error answer, classified)."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome.error_message or outcome.outcome.value)
        self.outcome = outcome


class Unknown(Exception):
    """The create got no definite answer: the post may be live."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


Find = Callable[[], Awaitable[PublishOutcome | None]]


async def post_once(
    ctx: AttemptContext,
    *,
    find: Find,
    upload: Callable[[], Awaitable[list[str]]],
    create: Callable[[list[str]], Awaitable[PublishOutcome]],
) -> PublishOutcome:
    doubt = ctx.may_be_live
    try:
        if doubt:
            found = await _read(find, "before posting again")
            if found is not None:
                return found
        try:
            media = await upload()
        except Unknown as lost:  # before the post: this attempt posted nothing
            outcome = PublishOutcome(Outcome.RETRYABLE_ERROR, error_message=lost.what)
            raise Refused(outcome) from None
        if media and ctx.remember_children is not None:
            await ctx.remember_children(media)  # durably, before the post can name them
        await ctx.confirm_claim()  # raises ClaimLost: nothing irreversible was sent
        try:
            return await create(media)
        except Unknown as unknown:
            found = await _read(find, f"after {unknown.what}")
            if found is not None:
                return found
            message = f"{unknown.what}; the account shows no post of the job yet: read again"
            return PublishOutcome(Outcome.AMBIGUOUS, error_message=message)
    except Refused as refused:
        outcome = refused.outcome
        if doubt and outcome.outcome in TRIED_AGAIN:
            return _may_be_live(outcome)
        return outcome


async def _read(find: Find, when: str) -> PublishOutcome | None:
    try:
        return await find()
    except Refused as refused:
        if refused.outcome.outcome in (Outcome.AUTH_ERROR, Outcome.RATE_LIMITED):
            raise Refused(_may_be_live(refused.outcome)) from None
        message = f"could not read the account's posts {when}: {refused.outcome.error_message}"
        raise Refused(PublishOutcome(Outcome.AMBIGUOUS, error_message=message)) from None
    except Unknown as failed:
        message = f"could not read the account's posts {when}: {failed.what}"
        raise Refused(PublishOutcome(Outcome.AMBIGUOUS, error_message=message)) from None


def _may_be_live(outcome: PublishOutcome) -> PublishOutcome:
    return PublishOutcome(
        outcome.outcome,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        retry_after_seconds=outcome.retry_after_seconds,
        may_be_live=True,
    )
