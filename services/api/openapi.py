"""The OpenAPI 3.1 document served at `/openapi.json`, built from small dicts.

Every route, its parameters, its request body and every status it can answer (with the
body's schema) are listed here; `tests/unit/test_openapi.py` checks the spec against the
routes the app registers, both ways.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from herald.shared import __version__
from herald.shared.domain import connection_rules as rules
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import DeadLetterReason, Outcome
from herald.shared.domain.platforms import CONNECTION_STATUSES, MEDIA_TYPES, PLATFORMS
from herald.shared.infra.paths import SCHEMAS_DIR

Schema = dict[str, Any]
JSON = "application/json"

STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
TIME: Schema = {"type": "string", "format": "date-time"}
UUID: Schema = {"type": "string", "format": "uuid"}
OBJ: Schema = {"type": "object"}
NAME: Schema = {"type": "string", "minLength": 1, "maxLength": rules.MAX_NAME}
TOKEN: Schema = {"type": "string", "minLength": 1, "maxLength": rules.MAX_TOKEN, "writeOnly": True}
TOKEN_RULES = (
    f"instagram tokens are {rules.MIN_TOKEN} to {rules.MAX_TOKEN} printable ASCII characters"
    f" without spaces, sandbox tokens optional (at most {rules.MAX_TOKEN} characters)"
)
METADATA_RULES = (
    f"at most {rules.MAX_METADATA_BYTES} bytes as JSON, {rules.MAX_METADATA_DEPTH} levels deep"
    f" and {rules.MAX_METADATA_ENTRIES} entries; sandbox `latency_ms` in"
    f" [0, {rules.MAX_SANDBOX_LATENCY_MS}] and rates in [0, 1]"
)


@cache
def _definitions() -> dict[str, Schema]:
    defs: dict[str, Schema] = orjson.loads((SCHEMAS_DIR / "definitions.json").read_bytes())["$defs"]
    return defs


def definition(name: str) -> Schema:
    """A field's one definition (`schemas/definitions.json`), its own references inlined:
    the spec describes exactly what the API and the topics check."""

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target.startswith("#/$defs/"):
                return inline(_definitions()[target.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema: Schema = inline(_definitions()[name])
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Schema], required: tuple[str, ...] = (), closed: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def page(item: str) -> Schema:
    return obj(
        {"items": {"type": "array", "items": ref(item)}, "next_cursor": null(STR)},
        ("items", "next_cursor"),
    )


JOB_OUT = (
    "id",
    "post_id",
    "tenant_id",
    "platform",
    "connection_id",
    "status",
    "attempt_count",
    "scheduled_at",
    "next_attempt_at",
    "published_at",
    "provider_ids",
    "last_error",
    "created_at",
    "updated_at",
)
MEDIA: Schema = definition("media_asset_ids")
INSTANT: Schema = {
    **definition("instant"),
    "description": "RFC 3339 with an offset (naive is refused), from 7 days ago to 2 years"
    " ahead; a past time means now",
}
CONNECTION_OUT = ("id", "tenant_id", "platform", "name", "metadata", "status", "created_at")
DEAD_LETTER_OUT = (
    "id",
    "job_id",
    "tenant_id",
    "platform",
    "connection_id",
    "reason",
    "attempt",
    "last_error",
    "created_at",
    "redriven_at",
)
FILTER_PROPS: dict[str, Schema] = {
    "platform": null({"enum": list(PLATFORMS)}),
    "reason": null({"enum": [r.value for r in DeadLetterReason]}),
    "connection_id": null(UUID),
    "since": null(TIME),
    "until": null(TIME),
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "message": STR,
                    "fields": {
                        "type": "object",
                        "additionalProperties": STR,
                        "description": "per-field messages, keyed by the field's name",
                    },
                },
                ("code", "message"),
            )
        },
        ("error",),
    ),
    "Job": obj(
        {
            "id": UUID,
            "post_id": UUID,
            "tenant_id": STR,
            "platform": {"enum": list(PLATFORMS)},
            "connection_id": UUID,
            "status": {"enum": [s.value for s in JobStatus]},
            "attempt_count": INT,
            "scheduled_at": TIME,
            "next_attempt_at": null(TIME),
            "published_at": null(TIME),
            "provider_ids": OBJ,
            "last_error": null(OBJ),
            "created_at": TIME,
            "updated_at": TIME,
            "media_asset_ids": MEDIA,
            "caption": STR,
            "media_type": null({"enum": list(MEDIA_TYPES)}),
            "publish_deadline": TIME,
        },
        JOB_OUT,
    ),
    "Post": obj(
        {"post_id": UUID, "jobs": {"type": "array", "items": ref("Job")}}, ("post_id", "jobs")
    ),
    "JobIn": {
        **obj(
            {
                "platform": {"enum": list(PLATFORMS)},
                "connection_id": definition("uuid"),
                "connection_ids": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": definition("uuid"),
                },
                "media_asset_ids": MEDIA,
                "caption": {
                    **definition("caption"),
                    "description": "instagram and sandbox: ≤ 2,200 characters; instagram:"
                    " ≤ 30 hashtags, ≤ 20 mentions; no NUL characters",
                },
                "scheduled_at": INSTANT,
                "media_type": {"enum": list(MEDIA_TYPES)},
                "publish_deadline": INSTANT,
                "tenant_id": {**definition("tenant_id"), "description": "admin keys only"},
            },
            ("platform", "media_asset_ids"),
            closed=True,
        ),
        "oneOf": [{"required": ["connection_id"]}, {"required": ["connection_ids"]}],
    },
    "JobPatch": obj(
        {"scheduled_at": INSTANT, "caption": definition("caption"), "publish_deadline": INSTANT},
        closed=True,
    ),
    "RetryIn": obj(
        {"force": {**BOOL, "description": "needed for an unconfirmed job"}}, closed=True
    ),
    "Attempt": obj(
        {
            "attempt": INT,
            "outcome": {"enum": [o.value for o in Outcome]},
            "error_code": null(INT),
            "error_subcode": null(INT),
            "error_message": null(STR),
            "provider_ids": OBJ,
            "worker": STR,
            "started_at": TIME,
            "finished_at": TIME,
        },
        (
            "attempt",
            "outcome",
            "error_code",
            "error_subcode",
            "error_message",
            "provider_ids",
            "worker",
            "started_at",
            "finished_at",
        ),
    ),
    "Connection": obj(
        {
            "id": UUID,
            "tenant_id": STR,
            "platform": {"enum": list(PLATFORMS)},
            "name": STR,
            "metadata": OBJ,
            "status": {"enum": list(CONNECTION_STATUSES)},
            "created_at": TIME,
            "updated_at": TIME,
        },
        CONNECTION_OUT,
    ),
    "ConnectionIn": obj(
        {
            "platform": {"enum": list(PLATFORMS)},
            "name": NAME,
            "access_token": {
                **TOKEN,
                "description": f"required for instagram; {TOKEN_RULES}; encrypted, never returned",
            },
            "metadata": {
                **obj({"instagramBusinessAccountId": {"type": "string", "pattern": "^[0-9]+$"}}),
                "description": METADATA_RULES,
            },
            "tenant_id": {"type": "string", "description": "admin keys only (default `default`)"},
        },
        ("platform", "name"),
    ),
    "ConnectionPatch": obj(
        {
            "name": NAME,
            "metadata": {**OBJ, "description": METADATA_RULES},
            "status": {
                "enum": list(CONNECTION_STATUSES),
                "description": "`active` again from `needs_reauth` or `disabled` only with a"
                " new `access_token`",
            },
            "access_token": {
                **TOKEN,
                "description": f"a new token re-authorises the connection; {TOKEN_RULES}",
            },
        },
        closed=True,
    ),
    "DeadLetter": obj(
        {
            "id": UUID,
            "job_id": null(UUID),
            "tenant_id": null(STR),
            "platform": null(STR),
            "connection_id": null(UUID),
            "reason": {"enum": [r.value for r in DeadLetterReason]},
            "attempt": null(INT),
            "last_error": null(OBJ),
            "created_at": TIME,
            "redriven_at": null(TIME),
            "raw_base64": {"type": "string", "description": "invalid_message rows (admin only)"},
        },
        DEAD_LETTER_OUT,
    ),
    "RedriveIn": obj(
        {
            **FILTER_PROPS,
            "job_ids": null({"type": "array", "items": UUID}),
            "dry_run": BOOL,
            "force": BOOL,
        },
        ("dry_run",),
        closed=True,
    ),
    "RedriveOut": obj(
        {"count": INT, "job_ids": {"type": "array", "items": UUID}}, ("count", "job_ids")
    ),
    "JobList": page("Job"),
    "AttemptList": page("Attempt"),
    "ConnectionList": page("Connection"),
    "DeadLetterList": page("DeadLetter"),
    "Health": obj(
        {
            "status": {"enum": ["ok", "failing"]},
            "loops": {"type": "object", "additionalProperties": BOOL},
        },
        ("status",),
    ),
    "Ready": obj(
        {
            "status": {"enum": ["ready", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": BOOL},
        },
        ("status",),
    ),
}

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
                param("platform", {"enum": list(PLATFORMS)}),
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
                param("platform", {"enum": list(PLATFORMS)}),
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
    "/": {"get": open_op("The ops page", {200: text("HTML", "text/html")}, "page")},
    "/static/app.js": {
        "get": open_op(
            "The ops page's script", {200: text("JavaScript", "text/javascript")}, "page"
        )
    },
    "/static/style.css": {
        "get": open_op("The ops page's style sheet", {200: text("CSS", "text/css")}, "page")
    },
}


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald API",
            "version": __version__,
            "description": "Scheduled social-media posts. Times are RFC 3339; answers"
            ' are UTC with `Z`. Errors: `{"error": {code, message,'
            " fields?}}`. Unknown routes answer 404 with that body.",
        },
        "servers": [{"url": "/"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key (`herald apikey create`)",
                }
            },
        },
        "security": [{"apiKey": []}],
    }
