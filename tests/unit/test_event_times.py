"""`events.iso` and `events.parse_time`: RFC 3339 in UTC with `Z` and six fractional digits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from herald.shared.messages.codec import instant_or_none, iso

ZONES = [
    UTC,
    ZoneInfo("Etc/UTC"),
    ZoneInfo("Europe/Paris"),
    ZoneInfo("Asia/Kolkata"),
    timezone(timedelta(hours=-5, minutes=-30)),
    None,  # naive: read as local time
]


def reference(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "2026-03-29T01:30:00.000000Z"),
        (
            datetime(2026, 3, 29, 3, 30, 0, 5, tzinfo=ZoneInfo("Europe/Paris")),
            "2026-03-29T01:30:00.000005Z",
        ),
        (
            datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
            "2026-11-30T04:59:59.999999Z",
        ),
    ],
)
def test_iso_writes_utc_with_z_and_microseconds(value: datetime, text: str) -> None:
    assert iso(value) == text
    assert instant_or_none(text) == value


def test_iso_matches_isoformat_for_any_zone_and_instant() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        value = datetime(
            rng.randint(1971, 2100),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice([0, rng.randint(0, 999_999)]),
            tzinfo=rng.choice(ZONES),
        )
        assert iso(value) == reference(value), value


def test_iso_of_none_is_none() -> None:
    assert iso(None) is None
