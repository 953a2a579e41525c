"""The routes the ops page leans on beyond the resources: a dry run of scheduling, the
pipeline's health, the connections' use, and the page's own files."""

from __future__ import annotations

from pathlib import Path

from herald.services.api.openapi.paths import json_response, op, open_op, text
from herald.services.api.openapi.schemas import (
    BOOL,
    INT,
    OBJ,
    STR,
    TIME,
    UUID,
    Schema,
    null,
    obj,
    ref,
)
from herald.shared.domain.jobs import JobStatus

STATIC = Path(__file__).parent.parent / "static"
COUNT = null(INT)

SCHEMAS: dict[str, Schema] = {
    "CaptionCounts": obj(
        {
            "chars": INT,
            "max_chars": INT,
            "hashtags": INT,
            "max_hashtags": COUNT,
            "mentions": INT,
            "max_mentions": COUNT,
        },
        ("chars", "max_chars", "hashtags", "max_hashtags", "mentions", "max_mentions"),
    ),
    "ValidateOut": obj(
        {
            "valid": BOOL,
            "status": {
                "type": "integer",
                "description": "the status POST /publishing/jobs would answer (201 or 4xx)",
            },
            "error": {
                "anyOf": [ref("ErrorDetail"), {"type": "null"}],
                "description": "the error scheduling would answer, `fields` naming each field",
            },
            "caption": {
                "anyOf": [ref("CaptionCounts"), {"type": "null"}],
                "description": "the caption's counts against the platform's limits (null: no"
                " known platform)",
            },
            "platform": STR,
            "connection_ids": {"type": "array", "items": UUID},
            "scheduled_at": {**TIME, "description": "what would be stored (a past time: now)"},
            "publish_deadline": TIME,
        },
        ("valid", "status", "error", "caption"),
    ),
    "ErrorDetail": obj(
        {"code": STR, "message": STR, "fields": {"type": "object", "additionalProperties": STR}},
        ("code", "message"),
    ),
    "PipelineHealth": obj(
        {
            "jobs_by_status": {
                "type": "object",
                "propertyNames": {"enum": [s.value for s in JobStatus]},
                "additionalProperties": INT,
                "description": "the jobs this key sees",
            },
            "dead_letters_24h": INT,
            "prometheus": obj({"reachable": BOOL, "error": null(STR)}, ("reachable", "error")),
            "alerts": null(
                {
                    "type": "array",
                    "items": obj(
                        {
                            "name": STR,
                            "severity": null(STR),
                            "summary": null(STR),
                            "since": null(TIME),
                            "labels": OBJ,
                        },
                        ("name",),
                    ),
                }
            ),
            "lag": null(
                {
                    "type": "array",
                    "items": obj(
                        {
                            "topic": STR,
                            "lag": INT,
                            "trend": {
                                "type": "array",
                                "description": "[unix seconds, lag] a minute apart, 30 minutes",
                                "items": {"type": "array", "items": INT},
                            },
                        },
                        ("topic", "lag", "trend"),
                    ),
                }
            ),
            "publishers_alive": COUNT,
        },
        (
            "jobs_by_status",
            "dead_letters_24h",
            "prometheus",
            "alerts",
            "lag",
            "publishers_alive",
        ),
    ),
    "ConnectionUsage": obj(
        {
            "items": {
                "type": "array",
                "items": obj(
                    {"connection_id": UUID, "jobs_24h": INT, "published_24h": INT},
                    ("connection_id", "jobs_24h", "published_24h"),
                ),
            }
        },
        ("items",),
    ),
}

PATHS: dict[str, dict[str, Schema]] = {
    "/publishing/jobs:validate": {
        "post": op(
            "What scheduling this body would answer, scheduling nothing",
            {
                200: json_response(
                    "the verdict, the stored times, the caption counts", ref("ValidateOut")
                )
            },
            body="JobIn",
        ),
    },
    "/publishing/health": {
        "get": op(
            "The pipeline at a glance: jobs by state, dead letters (24 h), consumer lag and"
            " its trend, publisher copies alive, the alerts Prometheus has firing",
            {200: json_response("Prometheus' part is null when it is away", ref("PipelineHealth"))},
            tag="operations",
        ),
    },
    "/publishing/connections:usage": {
        "get": op(
            "Per connection: jobs changed and posts published in the last 24 h",
            {200: json_response("one item per connection with jobs", ref("ConnectionUsage"))},
            tag="connections",
        ),
    },
    "/": {"get": open_op("The ops page", {200: text("HTML", "text/html")}, "page")},
    **{
        f"/static/{p.name}": {
            "get": open_op(
                f"The ops page's {p.name}",
                {200: text(p.suffix[1:], "text/javascript" if p.suffix == ".js" else "text/css")},
                "page",
            )
        }
        for p in sorted(STATIC.iterdir())
        if p.suffix in (".js", ".css")
    },
}
