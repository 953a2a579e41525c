"""Postgres side of the publisher: claim (job, attempt) before a call, store results after.

Concurrent requests share transactions (`Coalescer`): one claim transaction locks the job rows
of a whole batch (in id order, so copies never deadlock on each other), reads their claims,
attempts and connections, applies `decision.decide` per request and writes the claims and
`call_started_at` stamps; one finish statement stores a batch of results, which are then
produced to `publish.result` together and acknowledged by Kafka before anyone marks an offset.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Container
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from herald.services.publisher.decision import (
    AttemptRow,
    ClaimRow,
    Decision,
    JobState,
    Kind,
    decide,
)
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.errors import InvalidMessage
from herald.shared.infra.batching import Coalescer
from herald.shared.infra.crypto import TokenCipher
from herald.shared.infra.db.pool import BY_KEY, Database, Row, id_array
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import RESULT, Names
from herald.shared.messages import codec
from herald.shared.messages.result import encode_result, result_value
from herald.shared.stores import attempts, claims, connections, jobs

log = logging.getLogger(__name__)
EMITTED = JobLog(log, "results emitted", "result emitted", by="outcome")

_NO_CONNECTION: Row = {
    "connection_tenant": None,
    "connection_platform": None,
    "connection_name": None,
    "connection_status": None,
    "connection_metadata": None,
    "token_ciphertext": None,
}


@dataclass(frozen=True)
class Claimed:
    decision: Decision
    connection: Connection | None = None  # for CALL: the token decrypted in memory only
    # The token's ciphertext as claimed: an auth failure marks the connection `needs_reauth`
    # only while it still holds this token (a new one may have come meanwhile).
    token_blob: bytes | None = None
    # For CALL: `time.monotonic()` before the claim's transaction began. Its lease runs from
    # the transaction's start, so at least `lease_seconds` from this instant.
    since: float = float("-inf")

    def fresh(self, lease_seconds: float) -> bool:
        """Taken less than a third of a lease ago (the margin the lease renewal keeps): only
        a lease that ran out lets another worker take a claim over, so it is still ours."""
        return time.monotonic() - self.since < lease_seconds / 3


@dataclass(frozen=True)
class Emit:
    request: PublishRequest
    value: dict[str, Any]
    store: bool  # store in the claim first (a call's result); False: stored already


class ClaimStore:
    def __init__(
        self,
        db: Database,
        producer: Producer,
        names: Names,
        cipher: TokenCipher,
        *,
        worker: str,
        lease_seconds: float,
        platforms: Container[str],
        max_batch: int = 500,
    ) -> None:
        self.db = db
        self.producer = producer
        self.topic = names.topic(RESULT)
        self.cipher = cipher
        # Tokens stay decrypted in this process's memory only (never logged or written).
        self._decrypt = functools.lru_cache(maxsize=10_000)(cipher.decrypt)
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.platforms = platforms
        self._claims: Coalescer[PublishRequest, Claimed] = Coalescer(
            self._claim_many, max_batch=max_batch, concurrency=1
        )
        self._emits: Coalescer[Emit, dict[str, Any] | None] = Coalescer(
            self._emit_many, max_batch=max_batch, concurrency=1
        )
        self._holds: Coalescer[tuple[str, int, dict[str, Any]], bool] = Coalescer(
            self._hold_many, max_batch=max_batch
        )

    async def claim(self, request: PublishRequest) -> Claimed:
        return await self._claims.submit(request)

    async def emit(self, item: Emit) -> dict[str, Any] | None:
        """Store (if asked) and produce a result; answers the value Kafka acknowledged (the
        stored one when another worker stored a result for this attempt first), or None when
        another worker took the claim over and has not answered yet (nothing is produced:
        its new holder answers)."""
        return await self._emits.submit(item)

    async def hold(
        self,
        job_id: str,
        attempt: int,
        container_id: str | None = None,
        *,
        children: str | None = None,
        publishing: bool = False,
    ) -> bool:
        """True when this worker still holds the claim of (job, attempt), whose lease is then
        extended and, in the same statement, `container_id` or the carousel's `children`
        stored on the job, or with `publishing` the irreversible call recorded as sent; False
        when another worker took it over or a result is stored."""
        change = {"container_id": container_id, "children": children, "publishing": publishing}
        return await self._holds.submit((job_id, attempt, change))

    async def renew(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Extend the leases of these claims; answers those this worker still holds."""
        if not keys:
            return set()
        return await claims.renew(self.db, self.worker, self.lease_seconds, keys)

    # ---- batches --------------------------------------------------------------------------

    async def _claim_many(self, requests: list[PublishRequest]) -> list[Claimed]:
        ids = sorted({r.job_id for r in requests})
        since = time.monotonic()
        now = codec.now_utc()
        # Pipelined: the reads go out together, the writes and the commit too (2 round trips).
        async with self.db.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(BY_KEY)
            keys = id_array(ids)
            reads = [
                await read(conn, keys)
                for read in (
                    jobs.lock_for_claim,
                    connections.of_jobs,
                    claims.lock,
                    attempts.of_jobs,
                )
            ]
            accounts = {r["connection_id"]: r for r in await reads[1].fetchall()}
            rows = {
                r["job_id"]: r | accounts.get(r["connection_id"], _NO_CONNECTION)
                for r in await reads[0].fetchall()
            }
            held: dict[str, list[ClaimRow]] = {}
            for r in await reads[2].fetchall():
                held.setdefault(r["job_id"], []).append(
                    ClaimRow(
                        r["job_id"],
                        r["attempt"],
                        r["worker"],
                        r["expired"],
                        r["lease_until"],
                        r["result"],
                    )
                )
            answered: dict[str, list[AttemptRow]] = {}
            for r in await reads[3].fetchall():
                answered.setdefault(r["job_id"], []).append(
                    AttemptRow(
                        r["job_id"],
                        r["attempt"],
                        r["outcome"],
                        r["provider_ids"] or {},
                        r["finished_at"],
                    )
                )
            out = self._decide_all(requests, rows, held, answered, now, since)
            writes = [
                (req, c.decision) for req, c in zip(requests, out, strict=True) if c.decision.claim
            ]
            if writes:
                decided = claims.rows((r.job_id, r.attempt, d.result) for r, d in writes)
                await claims.upsert(conn, self.worker, self.lease_seconds, decided)
            calling = [
                r.job_id for r, c in zip(requests, out, strict=True) if c.decision.kind is Kind.CALL
            ]
            if calling:
                await jobs.stamp_call_started(conn, calling)
        return out

    async def _hold_many(self, items: list[tuple[str, int, dict[str, Any]]]) -> list[bool]:
        held = await claims.hold(self.db, self.worker, self.lease_seconds, claims.rows(items))
        return [(j, a) in held for j, a, _ in items]

    def _decide_all(
        self,
        requests: list[PublishRequest],
        jobs: dict[str, Row],
        claims: dict[str, list[ClaimRow]],
        attempts: dict[str, list[AttemptRow]],
        now: datetime,
        since: float,
    ) -> list[Claimed]:
        out: list[Claimed] = []
        seen: set[tuple[str, int]] = set()
        for req in requests:
            key = (req.job_id, req.attempt)
            if key in seen:  # the same attempt twice in one batch: the first one answers
                out.append(Claimed(Decision(Kind.HELD, lease_until=now)))
                continue
            seen.add(key)
            row = jobs.get(req.job_id)
            decision = decide(
                req,
                _job_state(row),
                claims.get(req.job_id, ()),
                attempts.get(req.job_id, ()),
                worker=self.worker,
                now=now,
                platforms=self.platforms,
            )
            out.append(self._with_connection(req, decision, row, now, since))
        return out

    def _with_connection(
        self, req: PublishRequest, decision: Decision, row: Row | None, now: datetime, since: float
    ) -> Claimed:
        if decision.kind is not Kind.CALL or row is None:
            return Claimed(decision)
        blob = row["token_ciphertext"]
        try:
            token = self._decrypt(bytes(blob), row["connection_id"]) if blob else ""
        except Exception:
            message = "the connection's token cannot be decrypted (is HERALD_SECRET_KEY right?)"
            outcome = PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
            value = result_value(req, outcome, worker=self.worker, started_at=now, finished_at=now)
            return Claimed(replace(decision, kind=Kind.ANSWER, result=value))
        connection = Connection(
            id=row["connection_id"],
            tenant_id=row["connection_tenant"],
            platform=row["connection_platform"],
            name=row["connection_name"],
            status=row["connection_status"],
            metadata=row["connection_metadata"] or {},
            access_token=token,
        )
        return Claimed(decision, connection, bytes(blob) if blob else None, since)

    async def _emit_many(self, items: list[Emit]) -> list[dict[str, Any] | None]:
        values: list[dict[str, Any] | None] = [i.value for i in items]
        store = [(n, i) for n, i in enumerate(items) if i.store]
        if store:
            async with self.db.connection() as conn, conn.pipeline(), conn.transaction():
                await conn.execute(BY_KEY)
                await self._store_results(conn, store, values)
        records = []
        for item, value in zip(items, values, strict=True):
            if value is None:
                continue
            try:
                encoded = encode_result(value)
            except InvalidMessage as exc:  # a stored value that no longer validates
                log.error(
                    "stored result fails the schema; emitting ours",
                    extra={"job_id": item.request.job_id, "error": str(exc)},
                )
                encoded = encode_result(item.value)
            records.append((self.topic, item.request.connection_id, encoded))
        if records:
            await self.producer.send_batch_async(records)
        # Logged after Kafka acknowledged them (an INFO line per result cost a fifth of the
        # CPU time): each result's job id, attempt, trace id and outcome.
        EMITTED.add(
            [
                {
                    "job_id": i.request.job_id,
                    "attempt": i.request.attempt,
                    "trace_id": i.request.trace_id,
                    "outcome": v.get("outcome"),
                    "stored_earlier": not i.store or v is not i.value,
                }
                for i, v in zip(items, values, strict=True)
                if v is not None
            ]
        )
        return values

    async def _store_results(
        self, conn: AsyncConnection[Row], store: list[tuple[int, Emit]], values: list[Any]
    ) -> None:
        """Store each result in its claim while this worker holds it. Otherwise a result
        stored already replaces ours in `values` (whoever stored first decides what is
        emitted), and a claim another worker took over without answering yet makes ours
        None: nothing is emitted, its new holder answers."""
        keys = [(i.request.job_id, i.request.attempt) for _, i in store]
        results = claims.rows((k[0], k[1], i.value) for k, (_, i) in zip(keys, store, strict=True))
        kept = await claims.store_results(conn, self.worker, results)
        lost = [(n, k) for (n, _), k in zip(store, keys, strict=True) if k not in kept]
        if not lost:
            return
        earlier = await claims.stored(conn, [k for _, k in lost])
        missing = [(n, k) for n, k in lost if k not in earlier]
        for n, k in lost:
            if k in earlier:
                # another worker answered first: agree with it; or it holds the claim now
                # and has not answered yet: leave the answer to it
                values[n] = earlier[k]
        if missing:  # no claim row at all (should not happen): store ours
            ours = claims.rows((k[0], k[1], values[n]) for n, k in missing)
            await claims.insert_results(conn, self.worker, ours)


def _job_state(row: Row | None) -> JobState | None:
    if row is None:
        return None
    return JobState(
        job_id=row["job_id"],
        status=row["status"],
        publish_deadline=row["publish_deadline"],
        container_id=row["container_id"],
        published_at=row["published_at"],
        provider_ids=row["provider_ids"] or {},
        connection_status=row["connection_status"],
        publish_sent=bool(row["publish_sent"]),
        child_container_ids=row["child_container_ids"],
        may_be_live=bool(row["may_be_live"]),
    )
