"""The OpenAPI 3.1 document served at `/openapi.json`, built from small dicts: `schemas`
(every body's schema) and `paths` (every route, its parameters, its request body and every
status it can answer, with the body's schema). `tests/unit/test_openapi.py` checks the spec
against the routes the app registers, both ways.
"""

from __future__ import annotations

from typing import Any

from herald.services.api.openapi import batch, ops
from herald.services.api.openapi.paths import PATHS
from herald.services.api.openapi.platforms import registry_schemas
from herald.services.api.openapi.schemas import SCHEMAS
from herald.shared import __version__
from herald.shared.platforms.registry import platforms


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
        "paths": PATHS | batch.PATHS | ops.PATHS,
        "components": {
            "schemas": SCHEMAS | batch.SCHEMAS | ops.SCHEMAS | registry_schemas(platforms()),
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
