"""The `sandbox` platform: a simulated platform for demos, benchmarks and chaos tests.

Connection metadata (all optional): `latency_ms` (the call's duration), and per-attempt
probabilities in [0, 1] `retryable_rate`, `permanent_rate`, `ambiguous_rate` (default 0: a
bare sandbox connection always succeeds at once). Accepted posts are rows in
`sandbox_posts`; `herald sandbox posts --json` prints them.

Every attempt first looks the job up in `sandbox_posts`: a post that exists answers
`published` with its recorded `published_at`, and the job is never posted again. An
ambiguous call records the post in about half of the cases and always loses the answer.
`confirm` is the lookup alone (found → `published`, else `unconfirmed`), so sandbox jobs
never end `unconfirmed` for a post that is live.

The lookups and inserts of concurrent attempts share one transaction per batch; a
transaction-scoped advisory lock per job makes lookup-then-insert atomic even when two
workers handle the same job at once.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from services.publisher.platforms.base import AttemptContext
from shared.batching import Coalescer
from shared.db.pool import Database, id_array
from shared.domain.outcomes import Outcome, PublishOutcome
from shared.domain.requests import Connection, PublishRequest

_LOCK_NAMESPACE = "herald-sandbox:"
# Look-ups by job id: use the index even when the table grew faster than its statistics.
_BY_KEY = "SELECT set_config('enable_seqscan', 'off', true)"
_LOCK = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT hashtextextended(%s || j, 0) AS k FROM unnest(%s::text[]) AS j ORDER BY 1) AS keys
"""
_INSERT = """
INSERT INTO sandbox_posts (job_id, attempt, connection_id)
SELECT DISTINCT ON (v.j) v.j, v.a, v.c
FROM jsonb_to_recordset(%s::jsonb) AS v(j uuid, a int, c uuid)
WHERE NOT EXISTS (SELECT 1 FROM sandbox_posts s WHERE s.job_id = v.j)
ORDER BY v.j, v.a
RETURNING job_id::text AS job_id, id
"""
_POSTS = """
SELECT DISTINCT ON (job_id) job_id::text AS job_id, id, published_at
FROM sandbox_posts WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, id
"""


@dataclass(frozen=True)
class _Post:
    job_id: str
    attempt: int
    connection_id: str
    record: bool  # insert a post when the job has none (False: lookup only)


@dataclass(frozen=True)
class _Found:
    post_id: str
    published_at: datetime
    existed: bool  # posted by an earlier call (True) or by this one


def draw(metadata: dict[str, Any], rng: random.Random) -> Outcome:
    """The simulated platform's answer for one call (before the lookup)."""
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
        self._posts: Coalescer[_Post, _Found | None] = Coalescer(self._post_many, max_batch=1000)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        meta = connection.metadata
        answer = draw(meta, self.rng)
        latency = meta.get("latency_ms", 0)
        if isinstance(latency, int | float) and latency > 0:
            await asyncio.sleep(float(latency) / 1000.0)
        record = answer is Outcome.PUBLISHED or (
            answer is Outcome.AMBIGUOUS and self.rng.random() < 0.5
        )
        if record:
            await ctx.confirm_claim()  # the post is the irreversible step
        found = await self._posts.submit(
            _Post(request.job_id, request.attempt, request.connection_id, record)
        )
        if found is not None and (found.existed or answer is Outcome.PUBLISHED):
            return _published(found)
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
        found = await self._posts.submit(
            _Post(request.job_id, request.attempt, request.connection_id, record=False)
        )
        if found is not None:
            return _published(found)
        return PublishOutcome(
            Outcome.UNCONFIRMED, error_message="sandbox: no post recorded for this job"
        )

    async def close(self) -> None:
        return None

    async def _post_many(self, items: list[_Post]) -> list[_Found | None]:
        jobs = sorted({i.job_id for i in items})
        record = [{"j": i.job_id, "a": i.attempt, "c": i.connection_id} for i in items if i.record]
        # One round trip for the statements, one for the commit (pipelined). The lock comes
        # first, in its own statement, so the statements after it see every committed post.
        async with self.db.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(_BY_KEY)
            keys = id_array(jobs)
            await conn.execute(_LOCK, (_LOCK_NAMESPACE, keys))
            inserted = await conn.execute(_INSERT, (orjson.dumps(record).decode(),))
            posts = await conn.execute(_POSTS, (keys,))
            new = {r["job_id"]: r["id"] for r in await inserted.fetchall()}
            found = {
                r["job_id"]: _Found(str(r["id"]), r["published_at"], r["job_id"] not in new)
                for r in await posts.fetchall()
            }
        inserter: dict[str, _Post] = {}
        for item in items:
            if item.record and item.job_id in new:
                inserter.setdefault(item.job_id, item)
        return [_for(found.get(i.job_id), inserter.get(i.job_id) is i) for i in items]


def _for(found: _Found | None, inserted_by_item: bool) -> _Found | None:
    """The post as one item sees it: posted by this call, or by another one before it."""
    if found is None or inserted_by_item or found.existed:
        return found
    return _Found(found.post_id, found.published_at, True)


def _published(found: _Found) -> PublishOutcome:
    return PublishOutcome(
        Outcome.PUBLISHED,
        provider_ids={"sandbox_post_id": found.post_id},
        published_at=found.published_at,
        provider_response={"sandbox_post_id": found.post_id, "already_posted": found.existed},
    )
