"""`publish.result`: what one attempt came to (written by the publisher, read by the results
service). `result_value` builds it from an outcome; `decode_result` reads it back as a `Result`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import PublishRequest
from herald.shared.errors import InvalidMessage
from herald.shared.infra.db.pool import without_nul
from herald.shared.infra.names import RESULT
from herald.shared.messages import codec


def result_value(
    req: PublishRequest,
    outcome: PublishOutcome,
    *,
    worker: str,
    started_at: datetime,
    finished_at: datetime,
) -> dict[str, Any]:
    """The value of one attempt's result (the caller scrubs the outcome's free text first).
    Stored as it is with the publisher's claim, so a redelivery re-emits it unchanged."""
    return {
        "job_id": req.job_id,
        "tenant_id": req.tenant_id,
        "platform": req.platform,
        "connection_id": req.connection_id,
        "attempt": req.attempt,
        "outcome": outcome.outcome.value,
        "error_code": outcome.error_code,
        "error_subcode": outcome.error_subcode,
        "error_message": outcome.error_message,
        "retry_after_seconds": outcome.retry_after_seconds,
        "provider_ids": {str(k): str(v) for k, v in outcome.provider_ids.items()},
        "provider_response": outcome.provider_response,
        "worker": worker,
        "started_at": codec.iso(started_at),
        "finished_at": codec.iso(finished_at),
        "published_at": codec.iso(outcome.published_at),
        "trace_id": req.trace_id,
        "may_be_live": outcome.may_be_live,
    }


def encode_result(result: dict[str, Any]) -> bytes:
    return codec.encode(RESULT, dict(result))


@dataclass(frozen=True)
class Result:
    """One valid `publish.result` value, read back (`value` keeps it as it came)."""

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
    may_be_live: bool = False


def decode_result(raw: bytes | None) -> Result:
    """Raises InvalidMessage for anything that is not a valid result (NUL characters, which
    Postgres refuses in text, are dropped)."""
    found = codec.decode(RESULT, raw)
    if raw is not None and b"\\u0000" in raw:  # JSON can carry NUL only escaped
        found = without_nul(found)
    try:
        return _result(found, raw)
    except ValueError as exc:  # an instant the schema's format took but no clock has
        raise InvalidMessage(f"publish.result: {exc}") from exc


def _result(found: dict[str, Any], raw: bytes | None) -> Result:
    retry_after = found.get("retry_after_seconds")
    published = found.get("published_at")
    return Result(
        value=found,
        raw=raw,
        job_id=str(uuid.UUID(found["job_id"])),
        tenant_id=found["tenant_id"],
        platform=found["platform"],
        connection_id=str(uuid.UUID(found["connection_id"])),
        attempt=int(found["attempt"]),
        outcome=Outcome(found["outcome"]),
        worker=found["worker"],
        started_at=codec.instant(found["started_at"]),
        finished_at=codec.instant(found["finished_at"]),
        published_at=codec.instant(published) if published is not None else None,
        retry_after=float(retry_after) if retry_after is not None else None,
        provider_ids=dict(found.get("provider_ids") or {}),
        trace_id=found["trace_id"],
        may_be_live=found.get("may_be_live") is True,
    )
