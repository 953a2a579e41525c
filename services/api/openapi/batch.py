"""The batch route's part of the document: `POST /publishing/jobs:batch`, its body (each
item a `JobIn` that may carry its own `idempotency_key`) and its answer (one item each)."""

from __future__ import annotations

import copy

from herald.services.api.openapi.paths import json_response, op
from herald.services.api.openapi.schemas import INT, Schema, obj, ref
from herald.services.api.openapi.schemas import SCHEMAS as BASE
from herald.shared.jobs.batch import MAX_BATCH

_ITEM: Schema = copy.deepcopy(BASE["JobIn"])
_ITEM["properties"]["idempotency_key"] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "description": "this job's Idempotency-Key (what the header is to POST /publishing/jobs)",
}

SCHEMAS: dict[str, Schema] = {
    "JobBatchItem": _ITEM,
    "JobBatchIn": obj(
        {
            "jobs": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": ref("JobBatchItem"),
            }
        },
        ("jobs",),
        closed=True,
    ),
    "JobBatchOut": obj(
        {
            "items": {
                "type": "array",
                "description": "one per job sent, in the same order",
                "items": {
                    "oneOf": [
                        obj(
                            {
                                "status": {"enum": [200, 201]},
                                "job": {"oneOf": [ref("Job"), ref("Post")]},
                            },
                            ("status", "job"),
                        ),
                        obj(
                            {"status": INT, "error": BASE["Error"]["properties"]["error"]},
                            ("status", "error"),
                        ),
                    ]
                },
            }
        },
        ("items",),
    ),
}

PATHS: dict[str, dict[str, Schema]] = {
    "/publishing/jobs:batch": {
        "post": op(
            f"Schedule up to {MAX_BATCH} posts, each on its own",
            {
                200: json_response(
                    "per job, in order: what POST /publishing/jobs would answer it (status"
                    " 201 or 200 with `job`, or its error status with `error`)",
                    ref("JobBatchOut"),
                )
            },
            body="JobBatchIn",
        ),
    },
}
