"""The `sandbox` platform: a simulated platform for demos, benchmarks and chaos tests.

Connection metadata (all optional): `latency_ms` (the call's duration), and per-attempt
probabilities in [0, 1] `retryable_rate`, `permanent_rate`, `ambiguous_rate` (default 0: a
bare sandbox connection always succeeds at once). Accepted posts are rows in
`sandbox_posts`; `herald sandbox posts --json` prints them.

Like a real platform it never deduplicates: every publish call it accepts inserts a post,
whether or not the job has one already, so a job id twice in `sandbox_posts` is a double
post anyone can see. A post's `published_at` is the instant the sandbox took it, as a
platform's post time is; its row is written after, with others in one statement. Half of a
call's latency passes before the post is taken and half after it (the answer's way back):
a crash, a timeout or a lost claim in the second half leaves a live post whose answer
never arrived. An ambiguous call records the post in about half of the cases and always
loses the answer.

The status lookup by job id (the sandbox's stand-in for Instagram's container check) is the
only way to learn that such a call went through. `publish` looks the job up before posting,
and answers `published` with the post it finds, exactly when an earlier call for this job
may have posted without its answer being stored:

- the previous attempt ended `ambiguous` (`ctx.previous_outcome_ambiguous`): its answer was
  lost, or its call failed or timed out after the post may have been recorded;
- this attempt was claimed before (`ctx.claimed_before`): the worker holding it was killed,
  or stalled past its lease and was taken over, after its call perhaps posted and before it
  stored the result (a redelivery after a crash, or the reconciler's stuck-job sweep);
- either of those, and only waits since: a `rate_limited` answer given without a call
  says the post may be live, and the results service keeps that note on the job for the
  next attempt (`ctx.may_be_live` covers all three, and the "sent" stamp).

Every other way to a second post is closed before the platform is called: a result stored
for this attempt is re-emitted, and a `published` outcome of any earlier attempt answers
`published` without a call (`decision.py`); any other stored outcome was a definite answer
that posted nothing. A fresh claim after a definite answer therefore posts without a lookup,
which keeps the common path at one insert statement per batch. `confirm` is the lookup
alone (found → `published`, else `unconfirmed`), so sandbox jobs never end `unconfirmed`
for a post that is live.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.platforms import AttemptContext, Connection, Outcome, PublishOutcome, PublishRequest
from herald.shared.infra.batching import Coalescer
from herald.shared.infra.db.pool import BY_KEY, Database, id_array, json_rows
from herald.shared.messages.codec import iso, now_utc

_INSERT = """
INSERT INTO sandbox_posts (job_id, attempt, connection_id, published_at)
SELECT v.j, v.a, v.c, v.t
FROM json_to_recordset(%s::json) AS v(j uuid, a int, c uuid, t timestamptz)
RETURNING job_id::text AS job_id, attempt, id, published_at
"""
_LOOKUP = """
SELECT DISTINCT ON (job_id) job_id::text AS job_id, id, published_at
FROM sandbox_posts WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, id
"""


_ALL = "SELECT job_id, attempt, connection_id, published_at FROM sandbox_posts ORDER BY id"


async def posts(db: Database) -> list[dict[str, Any]]:
    """Every post the sandbox accepted, oldest first: a job id twice is a double post."""
    return [
        {
            "job_id": str(r["job_id"]),
            "attempt": r["attempt"],
            "connection_id": str(r["connection_id"]),
            "published_at": iso(r["published_at"]),
        }
        for r in await db.fetch(_ALL)
    ]


@dataclass(frozen=True)
class _Post:
    job_id: str
    attempt: int
    connection_id: str
    taken_at: datetime  # the post's published_at


@dataclass(frozen=True)
class _Found:
    post_id: str
    published_at: datetime


def draw(metadata: dict[str, Any], rng: random.Random) -> Outcome:
    """The simulated platform's answer for one call."""
    u = rng.random()
    for outcome, key in (
        (Outcome.PERMANENT_ERROR, "permanent_rate"),
        (Outcome.RETRYABLE_ERROR, "retryable_rate"),
        (Outcome.AMBIGUOUS, "ambiguous_rate"),
    ):
        rate = _rate(metadata.get(key))
        if u < rate:
            return outcome
        u -= rate
    return Outcome.PUBLISHED


def _rate(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(float(value), 0.0), 1.0)
    return 0.0


class SandboxPublisher:
    name = "sandbox"
    # An exception or timeout may come after the post was recorded: the worker answers
    # `ambiguous` (the next attempt's lookup settles it).
    posts_without_container = True

    def __init__(self, db: Database, *, rng: random.Random | None = None) -> None:
        self.db = db
        self.rng = rng or random.Random()
        self._posts: Coalescer[_Post, _Found] = Coalescer(self._insert_many, max_batch=1000)
        self._lookups: Coalescer[str, _Found | None] = Coalescer(self._lookup_many, max_batch=1000)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        if ctx.may_be_live:
            found = await self._lookups.submit(request.job_id)
            if found is not None:
                return _published(found, already_posted=True)
        meta = connection.metadata
        answer = draw(meta, self.rng)
        half = _latency_seconds(meta) / 2
        if half:
            await asyncio.sleep(half)
        post: _Found | None = None
        if answer is Outcome.PUBLISHED or (answer is Outcome.AMBIGUOUS and self.rng.random() < 0.5):
            await ctx.confirm_claim()  # the post is the irreversible step
            post = await self._posts.submit(
                _Post(request.job_id, request.attempt, request.connection_id, now_utc())
            )
        if half:
            await asyncio.sleep(half)
        if answer is Outcome.PUBLISHED and post is not None:
            return _published(post, already_posted=False)
        if answer is Outcome.AMBIGUOUS:
            message = "sandbox: the answer was lost (the post may or may not be live)"
            return PublishOutcome(Outcome.AMBIGUOUS, error_message=message)
        if answer is Outcome.PERMANENT_ERROR:
            return PublishOutcome(
                Outcome.PERMANENT_ERROR, error_code=400, error_message="sandbox: refused"
            )
        return PublishOutcome(
            Outcome.RETRYABLE_ERROR, error_code=503, error_message="sandbox: try again later"
        )

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        found = await self._lookups.submit(request.job_id)
        if found is not None:
            return _published(found, already_posted=True)
        return PublishOutcome(
            Outcome.UNCONFIRMED, error_message="sandbox: no post recorded for this job"
        )

    async def close(self) -> None:
        return None

    async def _insert_many(self, items: list[_Post]) -> list[_Found]:
        """One statement for a batch of posts (autocommit: one round trip)."""
        values = [
            {"j": i.job_id, "a": i.attempt, "c": i.connection_id, "t": i.taken_at} for i in items
        ]
        rows = await self.db.fetch(_INSERT, (json_rows(values),))
        made: dict[tuple[str, int], list[_Found]] = {}
        for r in rows:
            made.setdefault((r["job_id"], r["attempt"]), []).append(
                _Found(str(r["id"]), r["published_at"])
            )
        return [made[(i.job_id, i.attempt)].pop() for i in items]

    async def _lookup_many(self, job_ids: list[str]) -> list[_Found | None]:
        """Each job's first post, if any (one pipelined transaction per batch)."""
        async with self.db.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(BY_KEY)
            cur = await conn.execute(_LOOKUP, (id_array(sorted(set(job_ids))),))
            rows = await cur.fetchall()
        found = {r["job_id"]: _Found(str(r["id"]), r["published_at"]) for r in rows}
        return [found.get(j) for j in job_ids]


def _latency_seconds(metadata: dict[str, Any]) -> float:
    latency = metadata.get("latency_ms", 0)
    if isinstance(latency, int | float) and not isinstance(latency, bool) and latency > 0:
        return float(latency) / 1000.0
    return 0.0


def _published(found: _Found, *, already_posted: bool) -> PublishOutcome:
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"sandbox_post_id": found.post_id},
        published_at=found.published_at,
        provider_response={"sandbox_post_id": found.post_id, "already_posted": already_posted},
    )
