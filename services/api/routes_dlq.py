"""`/publishing/dlq...`: dead letters and their redrive, over `shared.redrive`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.services.api.middleware import json_object, json_ok, principal, query, query_bool
from herald.shared.errors import ValidationFailed
from herald.shared.infra.db.pool import Database
from herald.shared.jobs import redrive as dlq
from herald.shared.jobs.service import JobService
from herald.shared.jobs.views import parse_limit

FILTERS = ("platform", "reason", "connection_id", "since", "until")
REDRIVE_FIELDS = frozenset({*FILTERS, "job_ids", "dry_run", "force"})


def redrive_request(body: dict[str, Any]) -> tuple[dict[str, Any], bool, bool]:
    """Type checks of the redrive body: (filter arguments, dry_run, force); 422 naming fields."""
    errors = {k: "unknown field" for k in body if k not in REDRIVE_FIELDS}
    for name in FILTERS:
        if body.get(name) is not None and not isinstance(body[name], str):
            errors[name] = "must be a string"
    job_ids = body.get("job_ids")
    if job_ids is not None and (
        not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids)
    ):
        errors["job_ids"] = "must be a list of job ids"
    if "dry_run" not in body:
        errors["dry_run"] = "is required (true to only list what would be redriven)"
    elif not isinstance(body["dry_run"], bool):
        errors["dry_run"] = "must be true or false"
    if not isinstance(body.get("force", False), bool):
        errors["force"] = "must be true or false"
    if errors:
        raise ValidationFailed("the redrive request is invalid", fields=errors)
    filters = {name: body.get(name) for name in FILTERS}
    filters["job_ids"] = job_ids
    return filters, bool(body["dry_run"]), bool(body.get("force", False))


def add_routes(app: web.Application, db: Database, jobs: JobService) -> None:
    async def list_dead_letters(request: web.Request) -> web.Response:
        filters = dlq.Filters.parse(**{name: query(request, name) for name in FILTERS})
        page = await dlq.list_dead_letters(
            db,
            principal(request),
            filters,
            include_redriven=query_bool(request, "include_redriven"),
            limit=parse_limit(query(request, "limit")),
            cursor=query(request, "cursor"),
        )
        return json_ok(page)

    async def redrive(request: web.Request) -> web.Response:
        arguments, dry_run, force = redrive_request(await json_object(request))
        result = await dlq.redrive(
            jobs, principal(request), dlq.Filters.parse(**arguments), dry_run=dry_run, force=force
        )
        return json_ok(result)

    app.router.add_get("/publishing/dlq", list_dead_letters, allow_head=False)
    app.router.add_post("/publishing/dlq/redrive", redrive)
