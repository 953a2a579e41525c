"""The OpenAPI document's paths: every route with its parameters, request body and every
status it can answer (`PATHS`), and the helpers that spell an operation (`op`, `open_op`)
and its error answers."""

from __future__ import annotations

from herald.services.api.openapi.schemas import (
    BOOL,
    FILTER_PROPS,
    INT,
    JSON,
    OBJ,
    STR,
    UUID,
    Schema,
    ref,
)
from herald.shared.domain.jobs import JobStatus

ERRORS = {
    400: "malformed JSON (`malformed_json`)",
    401: "missing, unknown or revoked API key",
    404: "the resource in the path does not exist or belongs to another tenant",
    409: "a state conflict",
    413: "the request body is too large",
    422: "the request parses but is invalid; `fields` names each bad field",
    500: "an unexpected error",
    503: "a store (Postgres or Redis) is away; retry after `Retry-After` seconds",
}


def json_response(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def redirect(description: str) -> Schema:
    return {"description": description, "headers": {"Location": {"schema": STR}}}


def error(status: int) -> Schema:
    response = json_response(ERRORS[status], ref("Error"))
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": INT, "description": "seconds"}}
    return response


def param(name: str, schema: Schema, where: str = "query", description: str = "") -> Schema:
    out: Schema = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        out["description"] = description
    return out


ID = param("id", UUID, "path")
PLATFORM_PATH = param("platform", ref("PlatformName"), "path")
LIMIT = param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50})
CURSOR = param("cursor", STR, description="`next_cursor` of the previous page")


def op(
    summary: str,
    ok: dict[int, Schema],
    errors: tuple[int, ...] = (),
    *,
    params: tuple[Schema, ...] = (),
    body: str | None = None,
    body_required: bool = True,
    tag: str = "jobs",
) -> Schema:
    """One operation; API routes add 401, 500 and 503, routes with a body 400 and 413."""
    codes = set(errors) | {401, 500, 503}
    if body:
        codes |= {400, 413, 422}
    responses = {str(k): v for k, v in ok.items()}
    responses.update({str(c): error(c) for c in sorted(codes)})
    out: Schema = {
        "summary": summary,
        "tags": [tag],
        "security": [{"apiKey": []}],
        "responses": dict(sorted(responses.items())),
    }
    if params:
        out["parameters"] = list(params)
    if body:
        out["requestBody"] = {"required": body_required, "content": {JSON: {"schema": ref(body)}}}
    return out


def open_op(summary: str, responses: dict[int, Schema], tag: str = "operations") -> Schema:
    return {
        "summary": summary,
        "tags": [tag],
        "security": [],
        "responses": {str(k): v for k, v in responses.items()},
    }


def text(description: str, media: str) -> Schema:
    return {"description": description, "content": {media: {"schema": STR}}}


JOB = {200: json_response("the job", ref("Job"))}
CONNECTION = {200: json_response("the connection (never its token)", ref("Connection"))}
ONE_OR_MORE = {"oneOf": [ref("Job"), ref("Post")]}

PATHS: dict[str, dict[str, Schema]] = {
    "/publishing/jobs": {
        "post": op(
            "Schedule a post (one job per connection)",
            {
                201: json_response(
                    "created: the job, or {post_id, jobs} for connection_ids", ONE_OR_MORE
                ),
                200: json_response("an idempotent replay: the original answer", ONE_OR_MORE),
            },
            (409, 422),
            body="JobIn",
            params=(
                param(
                    "Idempotency-Key",
                    {"type": "string", "minLength": 1, "maxLength": 255},
                    "header",
                    "per tenant, kept ≥ 24 h; the same body again answers 200, another body 409",
                ),
            ),
        ),
        "get": op(
            "List jobs, newest first",
            {200: json_response("a page", ref("JobList"))},
            (422,),
            params=(
                param("status", {"enum": [s.value for s in JobStatus]}),
                param("platform", ref("PlatformName")),
                param("connection_id", UUID),
                param("post_id", UUID),
                LIMIT,
                CURSOR,
            ),
        ),
    },
    "/publishing/jobs/{id}": {
        "get": op("One job", JOB, (404,), params=(ID,)),
        "patch": op(
            "Reschedule or edit the caption of a SCHEDULED job",
            JOB,
            (404, 409),
            params=(ID,),
            body="JobPatch",
        ),
    },
    "/publishing/jobs/{id}/attempts": {
        "get": op(
            "The job's attempts, newest first",
            {200: json_response("every attempt (one page)", ref("AttemptList"))},
            (404,),
            params=(ID,),
        ),
    },
    "/publishing/jobs/{id}/retry": {
        "post": op(
            "Re-queue a DEAD_LETTERED or RETRY_SCHEDULED job now, fresh budget",
            JOB,
            (404, 409),
            params=(ID,),
            body="RetryIn",
            body_required=False,
        ),
    },
    "/publishing/jobs/{id}/cancel": {
        "post": op(
            "Cancel before the platform call starts (again: a no-op)", JOB, (404, 409), params=(ID,)
        ),
    },
    "/publishing/platforms": {
        "get": op(
            "The platforms Herald publishes to: each one's media kinds and limits",
            {200: json_response("every registered platform", ref("PlatformList"))},
            (),
            tag="connections",
        ),
    },
    "/publishing/connections/oauth/{platform}/start": {
        "get": op(
            "Sign in on the platform: redirects to its consent page",
            {302: redirect("to the platform's consent page")},
            (400, 404, 409, 422),
            params=(
                PLATFORM_PATH,
                param("name", STR, description="a new connection's name"),
                param("connection_id", UUID, description="re-authorise this connection"),
                param("tenant_id", STR, description="admin keys only"),
                param("instance_url", STR, description="Mastodon: the instance to sign in on"),
            ),
            tag="connections",
        ),
        "post": op(
            "Sign in on the platform: the consent page's URL, for pages holding the key",
            {200: json_response("where to send the browser", ref("OAuthStartOut"))},
            (404, 409),
            params=(PLATFORM_PATH,),
            body="OAuthStartIn",
            body_required=False,
            tag="connections",
        ),
    },
    "/publishing/connections/oauth/{platform}/callback": {
        "get": {
            **open_op(
                "Where the platform sends the browser back: stores the token, then redirects",
                {
                    303: redirect("to the ops page, `/?connected=<connection id>`"),
                    400: error(400),
                    404: error(404),
                    409: error(409),
                    422: error(422),
                    500: error(500),
                    503: error(503),
                },
                tag="connections",
            ),
            "parameters": [
                PLATFORM_PATH,
                param("state", STR, description="the signed state the start made"),
                param("code", STR, description="the platform's authorization code"),
                param("error", STR, description="set when the person did not consent"),
            ],
        }
    },
    "/publishing/connections": {
        "post": op(
            "Store a platform connection (token encrypted at rest)",
            {201: json_response("created", ref("Connection"))},
            (422,),
            body="ConnectionIn",
            tag="connections",
        ),
        "get": op(
            "List connections",
            {200: json_response("the connections", ref("ConnectionList"))},
            (422,),
            params=(
                param("platform", ref("PlatformName")),
                param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 500}),
                CURSOR,
            ),
            tag="connections",
        ),
    },
    "/publishing/connections/{id}": {
        "get": op("One connection", CONNECTION, (404,), params=(ID,), tag="connections"),
        "patch": op(
            "Rename, change metadata or status; a new token re-authorises",
            CONNECTION,
            (404,),
            params=(ID,),
            body="ConnectionPatch",
            tag="connections",
        ),
        "delete": op("Disable the connection", CONNECTION, (404,), params=(ID,), tag="connections"),
    },
    "/publishing/dlq": {
        "get": op(
            "Dead letters (not yet redriven unless include_redriven)",
            {200: json_response("a page", ref("DeadLetterList"))},
            (422,),
            params=(
                *(param(k, v) for k, v in FILTER_PROPS.items()),
                param("include_redriven", BOOL),
                LIMIT,
                CURSOR,
            ),
            tag="dlq",
        ),
    },
    "/publishing/dlq/redrive": {
        "post": op(
            "Redrive matching dead letters (or only list them with dry_run)",
            {200: json_response("what was (or would be) redriven", ref("RedriveOut"))},
            (422,),
            body="RedriveIn",
            tag="dlq",
        ),
    },
    "/healthz": {
        "get": open_op(
            "Liveness",
            {
                200: json_response("every loop runs", ref("Health")),
                503: json_response("a loop has stopped", ref("Health")),
            },
        )
    },
    "/readyz": {
        "get": open_op(
            "Readiness (Kafka, Redis, Postgres answer)",
            {
                200: json_response("ready", ref("Ready")),
                503: json_response("a store is away", ref("Ready")),
            },
        )
    },
    "/metrics": {
        "get": open_op("Prometheus metrics", {200: text("exposition format", "text/plain")})
    },
    "/openapi.json": {"get": open_op("This document", {200: json_response("OpenAPI 3.1", OBJ)})},
}
