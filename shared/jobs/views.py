"""Rows → the API's JSON shapes, and list cursors."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from herald.shared.domain.jobs import next_attempt_shown
from herald.shared.errors import ValidationFailed
from herald.shared.infra.db.pool import Row
from herald.shared.messages import codec
from herald.shared.messages.codec import iso


def job_view(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "post_id": str(row["post_id"]),
        "tenant_id": row["tenant_id"],
        "platform": row["platform"],
        "connection_id": str(row["connection_id"]),
        "status": row["status"],
        "attempt_count": row["attempt_count"],
        "scheduled_at": iso(row["scheduled_at"]),
        "next_attempt_at": iso(next_attempt_shown(row["status"], row["next_attempt_at"])),
        "published_at": iso(row["published_at"]),
        "provider_ids": row["provider_ids"] or {},
        "last_error": row["last_error"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "media_asset_ids": list(row["media_asset_ids"]),
        "caption": row["caption"],
        "media_type": row["media_type"],
        "publish_deadline": iso(row["publish_deadline"]),
    }


def attempt_view(row: Row) -> dict[str, Any]:
    return {
        "attempt": row["attempt"],
        "outcome": row["outcome"],
        "error_code": row["error_code"],
        "error_subcode": row["error_subcode"],
        "error_message": row["error_message"],
        "provider_ids": row["provider_ids"] or {},
        "worker": row["worker"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
    }


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor made by `encode_cursor`; anything else (hand-made, cut, from another list)
    is a 422 naming `cursor`, never a query that fails."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return codec.instant(created), str(uuid.UUID(row_id))
    except Exception as exc:
        raise ValidationFailed("bad cursor", fields={"cursor": "is not a cursor"}) from exc


def cursor_params(cursor: str | None, limit: int) -> dict[str, Any]:
    """Keyset parameters of a list query: `after_ts`, `after_id` (the cursor's row, or
    None for the first page) and `limit` (one more than the page, to see if more follow)."""
    after = decode_cursor(cursor) if cursor else None
    return {
        "after_ts": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit + 1,
    }


def page(rows: list[Row], limit: int, view: Callable[[Row], dict[str, Any]]) -> dict[str, Any]:
    """`{"items": [...], "next_cursor": ... | None}` from up to `limit + 1` rows."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return {"items": [view(r) for r in rows], "next_cursor": next_cursor}


def parse_limit(value: str | None, default: int = 50, maximum: int = 500) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", value) or not 1 <= int(value) <= maximum:
        raise ValidationFailed(
            "bad limit", fields={"limit": f"must be an integer from 1 to {maximum}"}
        )
    return int(value)
