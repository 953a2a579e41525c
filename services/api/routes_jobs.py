"""`/publishing/jobs...`: thin handlers over the job service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.services.api.middleware import json_object, json_ok, parse_object, principal, query
from herald.shared.errors import ValidationFailed
from herald.shared.jobs.batch import MAX_BATCH, checked_key, schedule_bodies
from herald.shared.jobs.service import JobService
from herald.shared.jobs.views import parse_limit

# A batch's body: a thousand jobs of ordinary size fit many times over; a thousand of the
# largest captions do not (send fewer per request).
MAX_BATCH_BYTES = 8 * 1024 * 1024


def idempotency_key(request: web.Request) -> str | None:
    return checked_key(request.headers.get("Idempotency-Key"), "Idempotency-Key")


async def read_batch(request: web.Request) -> list[Any]:
    """The `jobs` of a batch body (`{"jobs": [...]}`, 1 to MAX_BATCH items, at most
    MAX_BATCH_BYTES): 413, 400 or 422 for the whole request otherwise."""
    if (request.content_length or 0) > MAX_BATCH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_BATCH_BYTES, request.content_length or 0)
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw += chunk
        if len(raw) > MAX_BATCH_BYTES:
            raise web.HTTPRequestEntityTooLarge(MAX_BATCH_BYTES, len(raw))
    body = parse_object(bytes(raw))
    items = body.get("jobs")
    if set(body) != {"jobs"} or not isinstance(items, list):
        fields = {k: "unknown field; a batch takes only jobs" for k in body if k != "jobs"}
        if not isinstance(items, list):
            fields["jobs"] = f"must be a list of 1 to {MAX_BATCH} jobs"
        raise ValidationFailed('the body must be {"jobs": [...]}', fields=fields)
    if not 1 <= len(items) <= MAX_BATCH:
        raise ValidationFailed(
            f"a batch holds 1 to {MAX_BATCH} jobs",
            fields={"jobs": f"must be a list of 1 to {MAX_BATCH} jobs, got {len(items)}"},
        )
    return items


def retry_force(body: dict[str, object]) -> bool:
    errors = {k: "unknown field; only force is accepted" for k in body if k != "force"}
    force = body.get("force", False)
    if not isinstance(force, bool):
        errors["force"] = "must be true or false"
    if errors:
        raise ValidationFailed("the retry request is invalid", fields=errors)
    return bool(force)


def add_routes(app: web.Application, jobs: JobService) -> None:
    async def schedule(request: web.Request) -> web.Response:
        key = idempotency_key(request)
        body = await json_object(request)
        result = await jobs.schedule(principal(request), body, idempotency_key=key)
        return json_ok(result.body, status=201 if result.created else 200)

    async def schedule_many(request: web.Request) -> web.Response:
        outcomes = await schedule_bodies(jobs, principal(request), await read_batch(request))
        return json_ok({"items": [o.item() for o in outcomes]})

    async def validate(request: web.Request) -> web.Response:
        return json_ok(await jobs.preview(principal(request), await json_object(request)))

    async def list_jobs(request: web.Request) -> web.Response:
        page = await jobs.list_jobs(
            principal(request),
            status=query(request, "status"),
            platform=query(request, "platform"),
            connection_id=query(request, "connection_id"),
            post_id=query(request, "post_id"),
            limit=parse_limit(query(request, "limit")),
            cursor=query(request, "cursor"),
        )
        return json_ok(page)

    async def get_job(request: web.Request) -> web.Response:
        return json_ok(await jobs.get(principal(request), request.match_info["id"]))

    async def attempts(request: web.Request) -> web.Response:
        items = await jobs.attempts(principal(request), request.match_info["id"])
        return json_ok({"items": items, "next_cursor": None})

    async def retry(request: web.Request) -> web.Response:
        force = retry_force(await json_object(request, allow_empty=True))
        return json_ok(await jobs.retry(principal(request), request.match_info["id"], force=force))

    async def cancel(request: web.Request) -> web.Response:
        return json_ok(await jobs.cancel(principal(request), request.match_info["id"]))

    async def reschedule(request: web.Request) -> web.Response:
        body = await json_object(request)
        return json_ok(await jobs.reschedule(principal(request), request.match_info["id"], body))

    app.router.add_post("/publishing/jobs", schedule)
    app.router.add_post("/publishing/jobs:batch", schedule_many)
    app.router.add_post("/publishing/jobs:validate", validate)
    app.router.add_get("/publishing/jobs", list_jobs, allow_head=False)
    app.router.add_get("/publishing/jobs/{id}", get_job, allow_head=False)
    app.router.add_patch("/publishing/jobs/{id}", reschedule)
    app.router.add_get("/publishing/jobs/{id}/attempts", attempts, allow_head=False)
    app.router.add_post("/publishing/jobs/{id}/retry", retry)
    app.router.add_post("/publishing/jobs/{id}/cancel", cancel)
