"""Pure validation of job bodies: every bad input names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald.shared.errors import InvalidMessage, ValidationFailed
from herald.shared.jobs.validation import parse_instant, validate_job
from herald.shared.messages import codec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
CONN = "6f1c1f1e-6d36-4e8e-9d0e-2b1a1c1d1e1f"


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "platform": "instagram",
        "connection_id": CONN,
        "media_asset_ids": ["https://cdn.example.com/a.jpg"],
        "caption": "hello",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def fields_of(b: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc:
        validate_job(b, now=NOW, missed_after_seconds=3600)
    assert exc.value.status == 422
    return exc.value.fields or {}


def test_a_valid_body_defaults_time_and_deadline() -> None:
    spec = validate_job(body(), now=NOW, missed_after_seconds=3600)
    assert spec.scheduled_at == NOW and spec.publish_deadline == NOW + timedelta(hours=1)
    assert not spec.deadline_explicit and spec.connection_ids == [CONN] and not spec.multi


def test_offset_times_are_stored_in_utc_and_past_times_become_now() -> None:
    spec = validate_job(
        body(scheduled_at="2026-12-01T09:30:00+01:00"), now=NOW, missed_after_seconds=60
    )
    assert spec.scheduled_at == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    past = validate_job(body(scheduled_at="2026-11-23T12:00:00Z"), now=NOW, missed_after_seconds=60)
    assert past.scheduled_at == NOW  # within the 7 days a past time may lie


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"platform": "myspace"}, "platform"),
        ({"connection_id": None}, "connection_id"),
        ({"connection_ids": [CONN]}, "connection_id"),  # both given
        ({"media_asset_ids": None}, "media_asset_ids"),
        ({"media_asset_ids": []}, "media_asset_ids"),
        ({"media_asset_ids": ["http://insecure.example.com/a.jpg"]}, "media_asset_ids"),
        (
            {"media_asset_ids": [f"https://c.example.com/{i}.jpg" for i in range(11)]},
            "media_asset_ids",
        ),
        ({"media_asset_ids": [42]}, "media_asset_ids"),
        ({"caption": "x" * 2201}, "caption"),
        ({"caption": " ".join(f"#tag{i}" for i in range(31))}, "caption"),
        ({"caption": " ".join(f"@user{i}" for i in range(21))}, "caption"),
        ({"caption": 7}, "caption"),
        ({"scheduled_at": "2026-12-01T09:30:00"}, "scheduled_at"),  # naive
        ({"scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"scheduled_at": 1764000000}, "scheduled_at"),
        ({"media_type": "GIF"}, "media_type"),
        ({"media_type": "CAROUSEL"}, "media_asset_ids"),  # one asset
        ({"media_type": "REELS"}, "media_asset_ids"),  # not a video
        ({"caption": "bad\x00text"}, "caption"),
        ({"tenant_id": 5}, "tenant_id"),
    ],
)
def test_bad_input_names_the_field(changes: dict[str, Any], field: str) -> None:
    assert field in fields_of(body(**changes))


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert fields_of(["not", "an", "object"]) == {"$": "not an object"}


def test_deadline_must_follow_the_scheduled_time() -> None:
    assert "publish_deadline" in fields_of(
        body(scheduled_at="2026-12-01T10:00:00Z", publish_deadline="2026-12-01T09:00:00Z")
    )


def test_sandbox_has_no_hashtag_limit_but_a_length_limit() -> None:
    tags = " ".join(f"#t{i}" for i in range(40))
    assert (
        validate_job(
            body(platform="sandbox", caption=tags), now=NOW, missed_after_seconds=60
        ).caption
        == tags
    )
    assert "caption" in fields_of(body(platform="sandbox", caption="y" * 2201))


def test_parse_instant_accepts_z_and_lowercase() -> None:
    errors: dict[str, str] = {}
    assert parse_instant("2026-01-02T03:04:05z", "t", errors) == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert errors == {}


@pytest.mark.parametrize(
    "instant",
    [
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: OverflowError before
        "0001-01-01T00:00:00Z",
        "2026-11-22T11:59:59Z",  # 7 days and a second ago
        "2028-12-01T12:00:01Z",  # 2 years (731 days) and a second ahead
        "2026-06-30T23:59:60Z",  # a leap second: valid RFC 3339, not a representable instant
        "2026-12-01T09:30:00.123456789123456789123456789123Z",  # longer than any instant
    ],
)
@pytest.mark.parametrize("field", ["scheduled_at", "publish_deadline"])
def test_instants_outside_the_window_are_refused_by_name(instant: str, field: str) -> None:
    assert field in fields_of(body(**{field: instant}))


def test_the_window_edges_are_taken() -> None:
    spec = validate_job(
        body(scheduled_at="2026-11-22T12:00:01Z", publish_deadline="2028-11-29T12:00:00Z"),
        now=NOW,
        missed_after_seconds=60,
    )
    assert spec.scheduled_at == NOW and spec.publish_deadline == NOW + timedelta(days=731)


def test_unknown_fields_are_refused_so_a_typo_never_posts_now() -> None:
    assert fields_of(body(schedule_at="2026-12-01T09:30:00Z")) == {
        "schedule_at": "unknown field; a job takes caption, caption_overrides, connection_id,"
        " connection_ids, media_asset_ids, media_type, platform, publish_deadline,"
        " scheduled_at, tenant_id"
    }


HOSTILE_URLS = [
    "https://cdn.example.com/a.jpg\n",  # Python's `$` matched before a final newline
    "https://cdn.example.com/a.jpg\r",
    "https://cdn.example.com/a b.jpg",
    "https://cdn.example.com/a\u2028b.jpg",
    "https://cdn.example.com/\x7f.jpg",
    "https:///a.jpg",
    "https://",
    " https://cdn.example.com/a.jpg",
    "HTTPS://cdn.example.com/a.jpg",
    "https://cdn.example.com/" + "a" * 2030,  # 2049 characters
    "https://" + "a" * 1_000_000,
]


@pytest.mark.parametrize("url", HOSTILE_URLS, ids=range(len(HOSTILE_URLS)))
def test_the_api_and_the_request_topic_refuse_the_same_urls(url: str) -> None:
    assert "media_asset_ids" in fields_of(body(media_asset_ids=[url]))
    request = {
        "job_id": CONN,
        "tenant_id": "t",
        "post_id": CONN,
        "platform": "instagram",
        "connection_id": CONN,
        "attempt": 1,
        "media_asset_ids": [url],
        "caption": "",
        "media_type": None,
        "scheduled_at": "2026-11-29T12:00:00Z",
        "due_at": "2026-11-29T12:00:00Z",
        "publish_deadline": "2026-11-30T12:00:00Z",
        "dispatched_at": "2026-11-29T12:00:00Z",
        "trace_id": "t",
    }
    with pytest.raises(InvalidMessage) as exc:
        codec.encode("publish.request", request)
    told = str(exc.value) + str(exc.value.fields)
    assert "(value)" in told and len(told) < 1000  # the value is never echoed back


def test_what_the_api_takes_the_request_topic_takes() -> None:
    for url in ("https://cdn.example.com/a.jpg?x=1#y", "https://é.example/ü.jpg"):
        validate_job(body(media_asset_ids=[url]), now=NOW, missed_after_seconds=60)
        request = {
            "job_id": CONN,
            "tenant_id": "t",
            "post_id": CONN,
            "platform": "instagram",
            "connection_id": CONN,
            "attempt": 1,
            "media_asset_ids": [url],
            "caption": "#a @b " * 300,
            "media_type": "IMAGE",
            "scheduled_at": "2026-11-29T12:00:00Z",
            "due_at": "2026-11-29T12:00:00Z",
            "publish_deadline": "2026-11-30T12:00:00Z",
            "dispatched_at": "2026-11-29T12:00:00Z",
            "trace_id": "t",
        }
        codec.encode("publish.request", request)
