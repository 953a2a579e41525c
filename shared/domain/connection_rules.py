"""What a connection's fields may hold: each check adds its field's error to `errors`.

Bounds keep one tenant from hurting the others: the metadata is stored with every
connection and read with every publish. What a platform asks of its connections (required
metadata, the token's shape) is declared by its plugin (`Platform.account`).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_NAME = 200
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 5
MAX_METADATA_ENTRIES = 256


def check_name(name: Any, errors: dict[str, str]) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        errors["name"] = f"must be a non-empty string of at most {MAX_NAME} characters"


def _shape_problem(metadata: dict[str, Any]) -> str | None:
    """Why `metadata` is too deep, too wide or too large (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    entries = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return f"must nest at most {MAX_METADATA_DEPTH} levels deep"
        children = list(value.values()) if isinstance(value, dict) else value
        entries += len(children)
        if entries > MAX_METADATA_ENTRIES:
            return f"must hold at most {MAX_METADATA_ENTRIES} entries"
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        return f"must be at most {MAX_METADATA_BYTES} bytes as JSON"
    return None


def check_metadata(metadata: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The metadata to store (`{}` for none), within the bounds every platform shares; the
    platform's own rules (`Platform.metadata_errors`) are checked on top."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        errors["metadata"] = "must be an object"
        return {}
    problem = _shape_problem(metadata)
    if problem:
        errors["metadata"] = problem
        return {}
    return metadata
