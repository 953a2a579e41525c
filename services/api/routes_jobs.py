"""`/publishing/jobs...`: thin handlers over the job service."""

from __future__ import annotations

from aiohttp import web

from herald.services.api.middleware import json_object, json_ok, principal, query
from herald.shared.errors import ValidationFailed
from herald.shared.jobs.service import JobService
from herald.shared.jobs.views import parse_limit

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ValidationFailed(
            "bad Idempotency-Key",
            fields={"Idempotency-Key": f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"},
        )
    return key


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
    app.router.add_post("/publishing/jobs:validate", validate)
    app.router.add_get("/publishing/jobs", list_jobs, allow_head=False)
    app.router.add_get("/publishing/jobs/{id}", get_job, allow_head=False)
    app.router.add_patch("/publishing/jobs/{id}", reschedule)
    app.router.add_get("/publishing/jobs/{id}/attempts", attempts, allow_head=False)
    app.router.add_post("/publishing/jobs/{id}/retry", retry)
    app.router.add_post("/publishing/jobs/{id}/cancel", cancel)
