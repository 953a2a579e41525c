"""The results service's values and SQL: parsing `publish.result`, and one batch's
statements (locks, attempt rows, job updates, dead-letter context)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from services.results.policy import AttemptResult, JobState
from shared import events
from shared.db.pool import Row
from shared.domain.jobs import JobStatus
from shared.domain.outcomes import Outcome
from shared.errors import InvalidMessage
from shared.jobs.views import JOB_COLUMNS
from shared.names import RESULT

SUMMARY_LIMIT = 50  # attempts per dead letter's summary (the newest)

_INSERT_ATTEMPT = (
    "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome,"
    " error_code, error_subcode, error_message, retry_after, provider_ids, provider_response)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (job_id, attempt) DO NOTHING RETURNING job_id, attempt"
)
_UPDATE_JOB = (
    "UPDATE jobs SET status = %s, failed_attempts = %s, next_attempt_at = %s, queued = %s,"
    " check_only = %s, force_required = %s, published_at = %s, provider_ids = %s,"
    " last_error = %s, updated_at = now() WHERE id = %s AND status = %s"
)


@dataclass(frozen=True)
class Incoming:
    """One valid `publish.result` value."""

    value: dict[str, Any]
    raw: bytes | None
    job_id: str
    tenant_id: str
    platform: str
    connection_id: str
    attempt: int
    outcome: Outcome
    worker: str
    started_at: datetime
    finished_at: datetime
    published_at: datetime | None
    retry_after: float | None
    provider_ids: dict[str, str]
    trace_id: str

    def attempt_result(self) -> AttemptResult:
        return AttemptResult(self.attempt, self.outcome, self.finished_at, self.retry_after)

    def error(self, *, may_be_live: bool) -> dict[str, Any]:
        """The job's `last_error` after this result (`may_be_live` feeds the policy)."""
        return {
            "outcome": self.outcome.value,
            "attempt": self.attempt,
            "code": self.value.get("error_code"),
            "subcode": self.value.get("error_subcode"),
            "message": self.value.get("error_message"),
            "may_be_live": may_be_live,
        }

    def log_fields(self, **more: Any) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "outcome": self.outcome.value,
            "trace_id": self.trace_id,
            **more,
        }


def clean(value: Any) -> Any:
    """Postgres text and jsonb refuse NUL characters: drop them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _instant(value: dict[str, Any], key: str) -> datetime | None:
    text = value.get(key)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(text).upper().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidMessage(f"{key} is not an RFC 3339 instant", {key: "not an instant"})
    return parsed.astimezone(UTC)


def parse(raw: bytes | None) -> Incoming:
    value = events.decode(RESULT, raw)
    if raw is not None and b"\\u0000" in raw:  # JSON can carry NUL only escaped
        value = clean(value)
    try:
        outcome = Outcome(value["outcome"])
    except ValueError as exc:
        raise InvalidMessage("unknown outcome", {"outcome": "unknown outcome"}) from exc
    started, finished = _instant(value, "started_at"), _instant(value, "finished_at")
    assert started is not None and finished is not None  # required by the schema
    retry_after = value.get("retry_after_seconds")
    return Incoming(
        value=value,
        raw=raw,
        job_id=str(uuid.UUID(value["job_id"])),
        tenant_id=value["tenant_id"],
        platform=value["platform"],
        connection_id=str(uuid.UUID(value["connection_id"])),
        attempt=int(value["attempt"]),
        outcome=outcome,
        worker=value["worker"],
        started_at=started,
        finished_at=finished,
        published_at=_instant(value, "published_at"),
        retry_after=float(retry_after) if retry_after is not None else None,
        provider_ids=dict(value.get("provider_ids") or {}),
        trace_id=value["trace_id"],
    )


def job_id_of(raw: bytes | None) -> str | None:
    """The job id of a message that failed validation, when it names a valid one."""
    try:
        value = orjson.loads(raw or b"")
        return str(uuid.UUID(str(value["job_id"])))
    except Exception:
        return None


def mismatch(inc: Incoming, row: Row | None) -> str | None:
    if row is None:
        return f"unknown job {inc.job_id}"
    for key, mine in (
        ("tenant_id", inc.tenant_id),
        ("platform", inc.platform),
        ("connection_id", inc.connection_id),
    ):
        if str(row[key]) != mine:
            return f"{key} {mine} does not match job {inc.job_id}"
    return None


def job_state(row: Row) -> JobState:
    return JobState(
        status=JobStatus(row["status"]),
        attempt_count=int(row["attempt_count"]),
        failed_attempts=int(row["failed_attempts"]),
        publish_deadline=row["publish_deadline"],
        next_attempt_at=row["next_attempt_at"],
        check_only=bool(row["check_only"]),
        force_required=bool(row["force_required"]),
        may_be_live=bool((row["last_error"] or {}).get("may_be_live")),
    )


async def lock_jobs(conn: psycopg.AsyncConnection[Row], job_ids: list[str]) -> dict[str, Row]:
    """Lock the batch's jobs in id order (concurrent batches then never deadlock)."""
    if not job_ids:
        return {}
    cur = await conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (job_ids,),
    )
    return {str(r["id"]): r for r in await cur.fetchall()}


async def insert_attempts(
    conn: psycopg.AsyncConnection[Row], incoming: list[Incoming]
) -> set[tuple[str, int]]:
    """Insert attempt rows; answers the (job id, attempt) pairs that were new."""
    if not incoming:
        return set()
    params = [
        (
            i.job_id,
            i.attempt,
            i.worker,
            i.started_at,
            i.finished_at,
            i.outcome.value,
            i.value.get("error_code"),
            i.value.get("error_subcode"),
            i.value.get("error_message"),
            i.retry_after,
            Jsonb(i.provider_ids),
            Jsonb(i.value["provider_response"]) if i.value.get("provider_response") else None,
        )
        for i in incoming
    ]
    fresh: set[tuple[str, int]] = set()
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT_ATTEMPT, params, returning=True)
        async for result in cur.results():
            fresh.update((str(r["job_id"]), int(r["attempt"])) for r in await result.fetchall())
    return fresh


async def update_jobs(
    conn: psycopg.AsyncConnection[Row], rows: dict[str, Row], original: dict[str, str]
) -> None:
    """Write the moved jobs, each guarded by the status it had under the lock."""
    if not original:
        return
    params = []
    for job_id, before in original.items():
        r = rows[job_id]
        params.append(
            (
                r["status"],
                r["failed_attempts"],
                r["next_attempt_at"],
                r["queued"],
                r["check_only"],
                r["force_required"],
                r["published_at"],
                Jsonb(r["provider_ids"] or {}),
                Jsonb(r["last_error"]) if r["last_error"] is not None else None,
                job_id,
                before,
            )
        )
    async with conn.cursor() as cur:
        await cur.executemany(_UPDATE_JOB, params)
        if cur.rowcount != len(params):
            raise RuntimeError(f"{len(params) - cur.rowcount} jobs changed under their locks")


async def attempt_summaries(
    conn: psycopg.AsyncConnection[Row], job_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    if not job_ids:
        return {}
    cur = await conn.execute(
        "SELECT job_id, attempt, outcome, error_code, error_subcode, error_message, worker,"
        " started_at, finished_at FROM attempts WHERE job_id = ANY(%s::uuid[])"
        " ORDER BY job_id, attempt",
        (job_ids,),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in await cur.fetchall():
        out.setdefault(str(r["job_id"]), []).append(
            {
                "attempt": r["attempt"],
                "outcome": r["outcome"],
                "error_code": r["error_code"],
                "error_subcode": r["error_subcode"],
                "error_message": r["error_message"],
                "worker": r["worker"],
                "started_at": events.iso(r["started_at"]),
                "finished_at": events.iso(r["finished_at"]),
            }
        )
    return {job: items[-SUMMARY_LIMIT:] for job, items in out.items()}
