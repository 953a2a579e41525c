"""Scheduling's checks beyond a body's own fields: a job's connections
(`check_connections`), the digest that makes a repeat recognisable (`request_hash`), and
what scheduling would answer without writing (`preview`). Every job is written by
`shared.jobs.batch.schedule_batch`, one request or many at a time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from herald.shared.domain.tenancy import Principal
from herald.shared.errors import DomainError, ValidationFailed
from herald.shared.infra.db.pool import Row
from herald.shared.jobs.validation import (
    JobInput,
    caption_counts,
    check_for_platform,
    validate_job,
)
from herald.shared.messages.codec import iso, now_utc, uuid_text
from herald.shared.stores import connections

if TYPE_CHECKING:
    from herald.shared.jobs.service import JobService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scheduled:
    """What `schedule` answers: 201 for new jobs, 200 for an idempotent replay."""

    created: bool
    body: dict[str, Any]


def request_hash(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def preview(svc: JobService, principal: Principal, body: Any) -> dict[str, Any]:
    """What `schedule` would answer for `body`, without writing anything: the same checks
    (`validate_job`, then `check_connections`), the error it would answer, the times it
    would store, and the caption's counts against the platform's limits. An Idempotency-Key
    replay is not looked up: a valid body here is one `schedule` would take as new."""
    counts = caption_counts(
        *(
            (body.get("platform"), body.get("caption") or "")
            if isinstance(body, dict)
            else (None, None)
        )
    )
    try:
        spec = validate_job(
            body, now=now_utc(), missed_after_seconds=svc.settings.missed_after_seconds
        )
        rows = await connections.by_ids(svc.db, spec.connection_ids)
        check_connections(principal, spec, {str(r["id"]): r for r in rows})
    except DomainError as exc:
        return {"valid": False, "status": exc.status, **exc.to_body(), "caption": counts}
    return {
        "valid": True,
        "status": 201,
        "error": None,
        "caption": counts,
        "platform": spec.platform,
        "connection_ids": spec.connection_ids,
        "scheduled_at": iso(spec.scheduled_at),
        "publish_deadline": iso(spec.publish_deadline),
    }


def check_connections(principal: Principal, spec: JobInput, by_id: dict[str, Row]) -> list[Row]:
    """The job's connections, in order: each known to the principal, enabled, of the job's
    platform (when it names one; else each network's media and caption limits hold), all of
    one tenant (and of the admin's `tenant_id`, when given)."""
    ordered = []
    limits: dict[str, str] = {}
    for i, cid in enumerate(spec.connection_ids):
        field = f"connection_ids[{i}]" if spec.multi else "connection_id"
        try:
            row = by_id.get(uuid_text(cid))
        except ValueError:
            row = None
        if row is None or not principal.sees(row["tenant_id"]):
            raise ValidationFailed("unknown connection", fields={field: f"no connection {cid}"})
        if row["status"] == "disabled":
            raise ValidationFailed(
                "disabled connection", fields={field: f"connection {cid} is disabled"}
            )
        if spec.platform is not None and row["platform"] != spec.platform:
            raise ValidationFailed(
                "platform mismatch",
                fields={field: f"connection {cid} is a {row['platform']} connection"},
            )
        if spec.platform is None:
            name = str(row["platform"])
            found = check_for_platform(
                name, spec.media_asset_ids, spec.media_type, spec.caption_for(name)
            )
            if found:
                limits[field] = f"{name} connection {cid}: " + "; ".join(
                    f"{k} {v}" for k, v in sorted(found.items())
                )
        ordered.append(row)
    if limits:
        raise ValidationFailed("a network refuses the post", fields=limits)
    field = "connection_ids" if spec.multi else "connection_id"
    tenants = {r["tenant_id"] for r in ordered}
    if len(tenants) > 1:
        raise ValidationFailed(
            "connections of several tenants", fields={field: "must belong to one tenant"}
        )
    if spec.tenant_id is not None:
        if not principal.is_admin:
            raise ValidationFailed(
                "only an admin key may name a tenant", fields={"tenant_id": "not allowed"}
            )
        if spec.tenant_id not in tenants:
            raise ValidationFailed(
                "tenant mismatch", fields={"tenant_id": "does not own the connection"}
            )
    return ordered
