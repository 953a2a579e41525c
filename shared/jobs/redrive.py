"""Dead-letter listing and redrive, shared by the HTTP API and the CLI.

CONTRACT (implemented by the results work; the API and CLI call exactly this):

    Filters.parse(platform=None, reason=None, connection_id=None, since=None, until=None,
                  job_ids=None) -> Filters            # strings in; raises ValidationFailed
    await list_dead_letters(db, principal, filters, *, include_redriven=False, limit=50,
                            cursor=None) -> {"items": [dead letter out], "next_cursor": str|None}
    await redrive(jobs: JobService, principal, filters, *, dry_run: bool, force: bool,
                  progress: bool = False) -> {"count": int, "job_ids": [str]}
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.shared.domain.outcomes import DeadLetterReason
from herald.shared.domain.tenancy import Principal
from herald.shared.errors import ValidationFailed
from herald.shared.infra.db.pool import Database, Row
from herald.shared.jobs.service import JobService
from herald.shared.jobs.validation import parse_instant
from herald.shared.jobs.views import cursor_params, page
from herald.shared.messages.codec import iso
from herald.shared.stores import dead_letters

CHUNK = 500  # jobs per requeue transaction
MAX_LIMIT = 500


@dataclass(frozen=True)
class Filters:
    platform: str | None = None
    reason: DeadLetterReason | None = None
    connection_id: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    job_ids: tuple[str, ...] | None = None

    @classmethod
    def parse(
        cls,
        platform: str | None = None,
        reason: str | None = None,
        connection_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        job_ids: Sequence[str] | str | None = None,
    ) -> Filters:
        """Strings in (empty means absent); every bad field named in one ValidationFailed."""
        errors: dict[str, str] = {}
        platform, reason, connection_id, since, until = (
            v if v != "" else None for v in (platform, reason, connection_id, since, until)
        )
        why = None
        if reason is not None:
            try:
                why = DeadLetterReason(reason)
            except ValueError:
                errors["reason"] = f"must be one of {', '.join(r.value for r in DeadLetterReason)}"
        connection = _uuid(connection_id, "connection_id", errors)
        start = parse_instant(since, "since", errors)
        end = parse_instant(until, "until", errors)
        if start is not None and end is not None and end <= start:
            errors["until"] = "must be after since"
        ids: tuple[str, ...] | None = None
        if job_ids is not None:
            items = job_ids.split(",") if isinstance(job_ids, str) else job_ids
            if isinstance(items, Sequence) and all(isinstance(j, str) for j in items):
                parsed = [_uuid(j.strip(), "job_ids", errors) for j in items]
                ids = tuple(p for p in parsed if p is not None)
            else:
                errors["job_ids"] = "must be a list of job ids"
        if errors:
            raise ValidationFailed("bad dead-letter filter", fields=errors)
        return cls(platform, why, connection, start, end, ids)

    def params(self, principal: Principal) -> dict[str, Any]:
        """The filters as `stores.dead_letters` takes them, as `principal` sees them."""
        params = {
            "tenant": None if principal.is_admin else principal.tenant_id,
            "admin": principal.is_admin,
            "platform": self.platform,
            "reason": self.reason.value if self.reason else None,
            "conn": self.connection_id,
            "since": self.since,
            "until": self.until,
            "ids": list(self.job_ids) if self.job_ids is not None else None,
        }
        return params


def _uuid(value: Any, field: str, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        errors[field] = "must be a UUID" if field != "job_ids" else f"{value!r} is not a job id"
        return None


def dead_letter_view(row: Row, *, admin: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": str(row["id"]),
        "job_id": str(row["job_id"]) if row["job_id"] is not None else None,
        "tenant_id": row["tenant_id"],
        "platform": row["platform"],
        "connection_id": str(row["connection_id"]) if row["connection_id"] else None,
        "reason": row["reason"],
        "attempt": row["attempt"],
        "last_error": row["last_error"],
        "created_at": iso(row["created_at"]),
        "redriven_at": iso(row["redriven_at"]),
    }
    if admin and (row["raw"] is not None or row["reason"] == DeadLetterReason.INVALID_MESSAGE):
        # The message as it came (invalid messages, unreadable results): admins only.
        item["raw_base64"] = base64.b64encode(bytes(row["raw"] or b"")).decode()
    return item


async def list_dead_letters(
    db: Database,
    principal: Principal,
    filters: Filters,
    *,
    include_redriven: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first; `invalid_message` rows (with their raw bytes) for admins only."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("bad limit", fields={"limit": f"must be from 1 to {MAX_LIMIT}"})
    params = filters.params(principal) | {"redriven": include_redriven}
    rows = await dead_letters.page(db, params | cursor_params(cursor, limit))
    rows = [r for r in rows if principal.sees(r["tenant_id"] or "")]  # the SQL did; be sure
    return page(rows, limit, lambda r: dead_letter_view(r, admin=principal.is_admin))


async def replayable(
    db: Database, principal: Principal, filters: Filters, *, force: bool
) -> list[str]:
    """The jobs a redrive replays: open dead letters matching the filters whose job is still
    DEAD_LETTERED (never `invalid_message`; `unconfirmed` ones only with `force`), oldest
    first. A dry run answers exactly this list; the real run requeues exactly these jobs."""
    return await dead_letters.replayable(db, filters.params(principal) | {"force": force})


async def redrive(
    jobs: JobService,
    principal: Principal,
    filters: Filters,
    *,
    dry_run: bool,
    force: bool,
    progress: bool = False,
) -> dict[str, Any]:
    """Requeue the matching dead-lettered jobs now, with a fresh budget (JobService)."""
    ids = await replayable(jobs.db, principal, filters, force=force)
    if dry_run or not ids:
        return {"count": len(ids), "job_ids": ids}
    done: list[str] = []
    with _Progress(len(ids), enabled=progress) as bar:
        for start in range(0, len(ids), CHUNK):
            rows = await jobs.requeue_now(ids[start : start + CHUNK], force=force)
            done.extend(str(r["id"]) for r in rows)
            bar.advance(min(CHUNK, len(ids) - start))
    order = {job_id: i for i, job_id in enumerate(ids)}
    done.sort(key=order.__getitem__)
    return {"count": len(done), "job_ids": done}


class _Progress:
    """A rich progress bar on stderr (results stay alone on stdout), or nothing."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task("redriving", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)
