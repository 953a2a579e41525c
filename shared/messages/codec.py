"""Topic values: JSON (orjson) validated against `schemas/` with validators compiled once."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema_rs
import orjson

from herald.shared.errors import InvalidMessage
from herald.shared.infra.paths import SCHEMAS_DIR

SCHEMA_VERSION = "1.3"
CURRENT_MAJOR = 1
ACCEPTED_MAJORS = frozenset({CURRENT_MAJOR, CURRENT_MAJOR - 1})


DEFINITIONS = "definitions.json"  # the fields every topic and the HTTP API share


@cache
def _registry() -> Any:
    definitions = orjson.loads((SCHEMAS_DIR / DEFINITIONS).read_bytes())
    return jsonschema_rs.Registry([(definitions["$id"], definitions)])


def _compile(schema: dict[str, Any]) -> Any:
    # Linear-time regular expressions (no backtracking), and values never echoed in error
    # messages (a megabyte-long field must not come back in a dead letter or a 422).
    return jsonschema_rs.validator_for(
        schema,
        registry=_registry(),
        validate_formats=True,
        pattern_options=jsonschema_rs.RegexOptions(),
        mask="(value)",
    )


@cache
def validator(topic: str) -> Any:
    return _compile(orjson.loads((SCHEMAS_DIR / f"{topic}.json").read_bytes()))


@cache
def definition(name: str) -> Any:
    """The validator of one shared field definition (`schemas/definitions.json`)."""
    base = orjson.loads((SCHEMAS_DIR / DEFINITIONS).read_bytes())["$id"]
    return _compile({"$ref": f"{base}#/$defs/{name}"})


def new_trace_id() -> str:
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex without the object


def now_utc() -> datetime:
    return datetime.now(UTC)


_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_text(value: str) -> str:
    """A UUID's canonical text (lower case, hyphenated); ValueError for anything else, as
    `uuid.UUID` raises. Text already canonical comes back as it is, without building a
    `uuid.UUID` (three a job were a tenth of the scheduling path's time)."""
    if _UUID_TEXT.fullmatch(value):
        return value
    return str(uuid.UUID(value))


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with `Z` and microseconds, e.g. `2026-11-29T11:42:01.243924Z`."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.astimezone(UTC)  # naive: local time, as `astimezone` reads it
    # orjson formats in C (a third of `isoformat` + `replace`, which were 9 % of the
    # scheduler's CPU time in a burst); it writes `Z` only for UTC and drops zero microseconds.
    text = orjson.dumps(value, option=orjson.OPT_UTC_Z)
    if text[-2:] != b'Z"':
        text = orjson.dumps(value.astimezone(UTC), option=orjson.OPT_UTC_Z)
    out = text[1:-1].decode()
    return out if len(out) == 27 else out[:-1] + ".000000Z"


def instant(text: str) -> datetime:
    """The one parser of instants: RFC 3339 with an offset (Graph's `+0000` too), answered
    in UTC. A naive, impossible or unrepresentable time raises ValueError."""
    parsed = datetime.fromisoformat(text.upper())  # `t` and `z` are RFC 3339 too
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # year 1 with a positive offset, year 9999 with a negative
        raise ValueError(f"{text!r} is out of range") from exc


def instant_or_none(value: Any) -> datetime | None:
    """`instant` for a value that may be absent or malformed (a platform's answer): None."""
    if not isinstance(value, str):
        return None
    try:
        return instant(value)
    except ValueError:
        return None


def _errors(topic: str, value: Any) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in validator(topic).iter_errors(value):
        path = ".".join(str(p) for p in err.instance_path) or "$"
        fields.setdefault(path, err.message)
    return fields


def encode(topic: str, value: dict[str, Any]) -> bytes:
    """Validate and serialise a value for `topic` (the base name, without prefix)."""
    value.setdefault("schema_version", SCHEMA_VERSION)
    fields = _errors(topic, value)
    if fields:
        raise InvalidMessage(f"value for {topic} fails its schema", fields)
    return orjson.dumps(value)


def decode(topic: str, raw: bytes | None) -> dict[str, Any]:
    """Parse and validate a value read from `topic`; raises InvalidMessage."""
    if raw is None:
        raise InvalidMessage("empty message")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidMessage("not a JSON object")
    version = str(value.get("schema_version", ""))
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) not in ACCEPTED_MAJORS:
        raise InvalidMessage(f"unsupported schema_version {version!r}")
    fields = _errors(topic, value)
    if _knows(version):  # a version we know carries no field we do not know (a typo)
        known = _properties(topic)
        fields |= {str(k): "unknown field" for k in value if k not in known}
    if fields:
        raise InvalidMessage(f"value fails the {topic} schema", fields)
    return value


def _knows(version: str) -> bool:
    """A version of the current major no newer than ours: every field it may carry is
    known here (a newer minor may add fields, which are let through)."""
    major, _, minor = version.partition(".")
    ours_major, _, ours_minor = SCHEMA_VERSION.partition(".")
    return major == ours_major and minor.isdigit() and int(minor) <= int(ours_minor)


@cache
def _properties(topic: str) -> frozenset[str]:
    schema = orjson.loads((SCHEMAS_DIR / f"{topic}.json").read_bytes())
    return frozenset(schema.get("properties", {}))


def identity(raw: bytes | None) -> tuple[str | None, int | None]:
    """The job id and attempt a message that cannot be decoded names, each when it can be
    read (a UUID; a positive integer), so its job can be told about it."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(value, dict):
        return None, None
    try:
        job_id: str | None = str(uuid.UUID(str(value.get("job_id"))))
    except ValueError:
        job_id = None
    attempt = value.get("attempt")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        attempt = None
    return job_id, attempt
