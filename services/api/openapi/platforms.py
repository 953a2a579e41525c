"""The schemas the platform registry fills in when the document is built: the platforms'
names, their media types, and what `GET /publishing/platforms` answers."""

from __future__ import annotations

from herald.services.api.openapi.schemas import BOOL, INT, OBJ, STR, Schema, null, obj, ref
from herald.shared.platforms.registry import Registry


def registry_schemas(registry: Registry) -> dict[str, Schema]:
    """The schemas the platform registry fills in: the names, the media types, and what
    `GET /publishing/platforms` answers."""
    kinds = sorted({k.name for p in registry.values() for k in p.media.kinds})
    nullable_int = null(INT)
    return {
        "PlatformName": {"enum": list(registry)},
        "MediaType": {"enum": kinds},
        "Platform": obj(
            {
                "name": ref("PlatformName"),
                "title": STR,
                "media_kinds": {
                    "type": "array",
                    "items": obj(
                        {
                            "media_type": ref("MediaType"),
                            "min_assets": INT,
                            "max_assets": INT,
                            "video": null(BOOL),
                        },
                        ("media_type", "min_assets", "max_assets", "video"),
                    ),
                },
                "media_type_optional": BOOL,
                "max_assets": INT,
                "max_image_bytes": nullable_int,
                "max_video_bytes": nullable_int,
                "caption": obj(
                    {
                        "chars": INT,
                        "hashtags": nullable_int,
                        "mentions": nullable_int,
                        "unit": {
                            "type": "string",
                            "description": "what `chars` counts: characters, graphemes,"
                            " weighted characters",
                        },
                    },
                    ("chars", "hashtags", "mentions", "unit"),
                ),
                "connection": OBJ,
                "token_refresh": BOOL,
                "oauth": BOOL,
                "oauth_instance": BOOL,
            },
            ("name", "media_kinds", "max_assets", "caption", "connection"),
        ),
        "PlatformList": obj({"items": {"type": "array", "items": ref("Platform")}}, ("items",)),
    }
