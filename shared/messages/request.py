"""`publish.request`: one attempt to publish one job (written by the dispatcher, read by the
publisher). The value is the job as it is to be posted, and the attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from herald.shared.domain.requests import PublishRequest
from herald.shared.errors import InvalidMessage
from herald.shared.infra.db.pool import Row
from herald.shared.infra.names import REQUEST
from herald.shared.messages import codec


def job_fields(row: Row) -> dict[str, Any]:
    """The job as the publisher is asked to publish it (also a dead letter's `request`)."""
    return {
        "job_id": str(row["id"]),
        "tenant_id": row["tenant_id"],
        "post_id": str(row["post_id"]),
        "platform": row["platform"],
        "connection_id": str(row["connection_id"]),
        "attempt": int(row["attempt_count"]),
        "media_asset_ids": list(row["media_asset_ids"]),
        "caption": row["caption"],
        "media_type": row["media_type"],
        "scheduled_at": codec.iso(row["scheduled_at"]),
        "publish_deadline": codec.iso(row["publish_deadline"]),
        "check_only": bool(row["check_only"]),
        "trace_id": row["trace_id"],
    }


def request_value(row: Row, due: float) -> dict[str, Any]:
    """The request of a job row just marked IN_PROGRESS, due at `due` (epoch seconds)."""
    return job_fields(row) | {
        "due_at": codec.iso(datetime.fromtimestamp(due, UTC)),
        "dispatched_at": codec.iso(row["dispatched_at"]),
    }


def encode_request(row: Row, due: float) -> bytes:
    return codec.encode(REQUEST, request_value(row, due))


def decode_request(raw: bytes | None) -> PublishRequest:
    """A `publish.request` value as the domain object; raises InvalidMessage."""
    found = codec.decode(REQUEST, raw)
    try:
        return _request(found)
    except ValueError as exc:  # a leap second, say: valid RFC 3339, not an instant
        raise InvalidMessage(f"publish.request: {exc}") from exc


def _request(found: dict[str, Any]) -> PublishRequest:
    return PublishRequest(
        job_id=str(found["job_id"]),
        tenant_id=str(found["tenant_id"]),
        post_id=str(found["post_id"]),
        platform=str(found["platform"]),
        connection_id=str(found["connection_id"]),
        attempt=int(found["attempt"]),
        media_asset_ids=list(found["media_asset_ids"]),
        caption=str(found["caption"]),
        media_type=found.get("media_type"),
        scheduled_at=codec.instant(found["scheduled_at"]),
        due_at=codec.instant(found["due_at"]),
        publish_deadline=codec.instant(found["publish_deadline"]),
        trace_id=str(found["trace_id"]),
        check_only=bool(found.get("check_only", False)),
    )
