"""The OpenAPI document's schemas: the building blocks (`obj`, `ref`, `null`, `page`), the
fields' one definitions read from `schemas/definitions.json`, and every body's schema
(`SCHEMAS`, the document's `components.schemas`)."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from herald.shared.domain import connection_rules as rules
from herald.shared.domain.jobs import JobStatus
from herald.shared.domain.outcomes import DeadLetterReason, Outcome
from herald.shared.domain.platforms import CONNECTION_STATUSES
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
TOKEN: Schema = {"type": "string", "minLength": 1, "maxLength": 4096, "writeOnly": True}
TOKEN_RULES = "each platform's token rules and whether it needs one: GET /publishing/platforms"
METADATA_RULES = (
    f"at most {rules.MAX_METADATA_BYTES} bytes as JSON, {rules.MAX_METADATA_DEPTH} levels deep"
    f" and {rules.MAX_METADATA_ENTRIES} entries; each platform's keys: GET /publishing/platforms"
)
# The platforms' names and media types come from the platform registry when the document is
# built (`registry_schemas`); everything else refers to them.
PLATFORM: Schema = {"$ref": "#/components/schemas/PlatformName"}
MEDIA_TYPE: Schema = {"$ref": "#/components/schemas/MediaType"}


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
CONNECTION_OUT = (
    "id",
    "tenant_id",
    "platform",
    "name",
    "metadata",
    "status",
    "created_at",
    "token",
)
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
    "platform": null(PLATFORM),
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
            "platform": PLATFORM,
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
            "media_type": null(MEDIA_TYPE),
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
                "platform": {
                    **PLATFORM,
                    "description": "optional: when given, every connection must be on it;"
                    " without it each connection's network checks the media and caption",
                },
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
                    "description": "each platform's limits (characters, hashtags, mentions):"
                    " GET /publishing/platforms; no NUL characters",
                },
                "caption_overrides": {
                    **definition("caption_overrides"),
                    "description": "a caption per platform, used on that platform's"
                    " connections instead of `caption` (its limits apply)",
                },
                "scheduled_at": INSTANT,
                "media_type": MEDIA_TYPE,
                "publish_deadline": INSTANT,
                "tenant_id": {**definition("tenant_id"), "description": "admin keys only"},
            },
            ("media_asset_ids",),
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
            "platform": PLATFORM,
            "name": STR,
            "metadata": OBJ,
            "status": {"enum": list(CONNECTION_STATUSES)},
            "created_at": TIME,
            "updated_at": TIME,
            "token": {
                **obj(
                    {
                        "issued_at": null(TIME),
                        "expires_at": null(TIME),
                        "refresh_at": null(TIME),
                        "refresh_error": null(STR),
                    },
                    ("issued_at", "expires_at", "refresh_at", "refresh_error"),
                ),
                "description": "the token's lifecycle (never the token): when it was stored,"
                " when it expires (null: unknown or never), when Herald refreshes it next"
                " (null: never) and why the last refresh failed",
            },
        },
        CONNECTION_OUT,
    ),
    "ConnectionIn": obj(
        {
            "platform": PLATFORM,
            "name": NAME,
            "access_token": {
                **TOKEN,
                "description": f"{TOKEN_RULES}; encrypted, never returned",
            },
            "metadata": {**OBJ, "description": METADATA_RULES},
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
    "OAuthStartIn": obj(
        {
            "name": NAME,
            "connection_id": {**UUID, "description": "re-authorise this connection"},
            "tenant_id": {"type": "string", "description": "admin keys only"},
            "metadata": {
                "type": "object",
                "maxProperties": 8,
                "additionalProperties": {"type": "string", "maxLength": 128},
                "description": "for the platform's exchange and the connection (e.g. which"
                " Page to connect)",
            },
            "instance_url": {
                "type": "string",
                "maxLength": 256,
                "description": "the instance to sign in on, for a platform with an app per"
                " host (Mastodon): a public https URL",
            },
        },
        closed=True,
    ),
    "OAuthStartOut": obj({"authorize_url": STR}, ("authorize_url",)),
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
