"""The topic schemas: each compiles, the AsyncAPI document names them all, and values
round-trip through encode/decode with the validation the services use."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
import yaml  # type: ignore[import-untyped]

from herald.shared.errors import InvalidMessage
from herald.shared.infra.names import ALL_TOPICS
from herald.shared.infra.paths import SCHEMAS_DIR
from herald.shared.messages import codec


def test_every_topic_has_a_compiled_schema_named_in_asyncapi() -> None:
    spec = yaml.safe_load((SCHEMAS_DIR / "asyncapi.yaml").read_text())
    addresses = {c["address"] for c in spec["channels"].values()}
    assert addresses == set(ALL_TOPICS)
    refs = {m["payload"]["schema"]["$ref"] for m in spec["components"]["messages"].values()}
    assert refs == {f"./{t}.json" for t in ALL_TOPICS}
    for topic in ALL_TOPICS:
        assert codec.validator(topic) is not None


def test_a_status_value_round_trips_and_a_bad_one_names_its_field() -> None:
    value = {
        "job_id": str(uuid.uuid4()),
        "tenant_id": "t",
        "status": "PUBLISHED",
        "attempt": 1,
        "time": "2026-11-29T10:00:00Z",
        "trace_id": "x",
    }
    assert codec.decode("publish.status", codec.encode("publish.status", dict(value)))["status"]
    with pytest.raises(InvalidMessage) as exc:
        codec.encode("publish.status", value | {"status": "LOST"})
    assert "status" in exc.value.fields


STATUS = {
    "job_id": "0b8f5a52-6c1e-4c55-9a53-5f0c1f3f0001",
    "tenant_id": "t",
    "status": "PUBLISHED",
    "attempt": 1,
    "time": "2026-11-29T10:00:00Z",
    "trace_id": "x",
}
CANCEL = {
    "command": "cancel",
    "job_id": "0b8f5a52-6c1e-4c55-9a53-5f0c1f3f0001",
    "tenant_id": "t",
    "idempotency_key": "cancel:1",
    "trace_id": "x",
}


@pytest.mark.parametrize(
    ("topic", "value"), [("publish.status", STATUS), ("publish.schedule", CANCEL)]
)
def test_previous_major_is_accepted_and_others_refused(
    topic: str, value: dict[str, object]
) -> None:
    major = codec.CURRENT_MAJOR
    for version in (codec.SCHEMA_VERSION, f"{major}.0", f"{major - 1}.0", f"{major - 1}.7"):
        raw = orjson.dumps(value | {"schema_version": version})
        assert codec.decode(topic, raw)["schema_version"] == version
    for version in (f"{major + 1}.0", f"{major - 2}.9", "7.0", "", None):
        raw = orjson.dumps(value | {"schema_version": version})
        with pytest.raises(InvalidMessage, match="schema_version"):
            codec.decode(topic, raw)


def test_a_known_version_with_an_unknown_field_is_refused_a_newer_minor_is_not() -> None:
    command = {
        "schema_version": codec.SCHEMA_VERSION,
        "command": "schedule",
        "job_id": str(uuid.uuid4()),
        "tenant_id": "t",
        "idempotency_key": "k",
        "trace_id": "x",
        "platform": "sandbox",
        "connection_id": str(uuid.uuid4()),
        "media_asset_ids": ["https://cdn.example.com/a.jpg"],
        "schedule_at": "2026-12-24T10:00:00Z",  # a typo that would post at once
    }
    with pytest.raises(InvalidMessage) as exc:
        codec.decode("publish.schedule", orjson.dumps(command))
    assert exc.value.fields == {"schedule_at": "unknown field"}
    major, minor = codec.SCHEMA_VERSION.split(".")
    newer = command | {"schema_version": f"{major}.{int(minor) + 1}"}
    assert codec.decode("publish.schedule", orjson.dumps(newer))["schedule_at"]


def test_asyncapi_names_the_security_schemes_of_schedule_producers() -> None:
    spec = yaml.safe_load((SCHEMAS_DIR / "asyncapi.yaml").read_text())
    schemes = spec["components"]["securitySchemes"]
    send = spec["operations"]["sendScheduleCommand"]
    named = {ref["$ref"].rsplit("/", 1)[1] for ref in send["security"]}
    assert named == set(schemes) and {"scramSha512", "oauthBearer"} <= named
    assert schemes["scramSha512"]["type"] == "scramSha512"


@pytest.mark.parametrize("topic", ALL_TOPICS)
def test_every_schema_carries_examples_that_pass_it(topic: str) -> None:
    schema = json.loads((SCHEMAS_DIR / f"{topic}.json").read_text())
    assert schema["examples"]
    for example in schema["examples"]:
        assert codec.decode(topic, orjson.dumps(example)) is not None


def test_platform_stays_a_pattern_since_plugins_add_platforms() -> None:
    definitions = json.loads((SCHEMAS_DIR / "definitions.json").read_text())
    assert definitions["$defs"]["platform"] == {
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]{0,31}$",
    }
