"""A job body without `platform` (each connection's network checks it when it is
scheduled) and `caption_overrides` (checked against each named platform's limits)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from herald.shared.errors import ValidationFailed
from herald.shared.jobs.validation import JobInput, check_for_platform, validate_job

NOW = datetime(2026, 5, 1, tzinfo=UTC)
CONN = "7f9c2c1e-7a55-4a43-9b8b-3c2f6f1d2a11"


def check(**body: Any) -> JobInput:
    return validate_job(
        {"connection_id": CONN, "media_asset_ids": ["https://c.example/a.jpg"], **body},
        now=NOW,
        missed_after_seconds=60,
    )


def refused(**body: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as exc:
        check(**body)
    return exc.value.fields or {}


def test_platform_is_optional_and_the_caption_follows_the_platform() -> None:
    spec = check(caption="all", caption_overrides={"threads": "th"})
    assert spec.platform is None
    assert spec.caption_for("threads") == "th"
    assert spec.caption_for("facebook") == "all"


def test_an_override_is_checked_against_its_platform() -> None:
    fields = refused(caption_overrides={"threads": "y" * 501})
    assert fields == {"caption_overrides.threads": "at most 500 characters on threads, got 501"}
    assert "caption_overrides.myspace" in refused(caption_overrides={"myspace": "x"})
    assert "caption_overrides" in refused(caption_overrides=["x"])


def test_with_a_platform_an_override_for_another_is_refused() -> None:
    fields = refused(platform="threads", caption_overrides={"facebook": "x"})
    assert fields == {"caption_overrides.facebook": "the job is for threads only"}


def test_one_platform_rules_check_media_and_caption() -> None:
    assert check_for_platform("threads", [], "TEXT", "hi") == {}
    assert "media_type" in check_for_platform("facebook", [], "TEXT", "hi")
    assert check_for_platform("threads", ["https://c.example/a.jpg"], None, "y" * 501) == {
        "caption": "at most 500 characters on threads, got 501"
    }


def test_the_cli_takes_several_networks_and_a_caption_per_platform() -> None:
    from herald.services.cli import build_parser

    args = build_parser().parse_args(
        [
            "schedule",
            "--connection",
            CONN,
            "--connection",
            CONN,
            "--media-type",
            "TEXT",
            "--caption",
            "hi",
            "--caption-for",
            "x=hi on X",
            "--caption-for",
            "linkedin=a=b",
        ]
    )
    assert args.platform is None and args.media is None
    assert dict(args.caption_for) == {"x": "hi on X", "linkedin": "a=b"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["schedule", "--connection", CONN, "--caption-for", "x"])


def test_bluesky_refuses_more_than_300_graphemes_when_a_job_is_scheduled() -> None:
    text = {"media_asset_ids": [], "media_type": "TEXT"}
    assert check_for_platform("bluesky", [], "TEXT", "x" * 301) == {
        "caption": "at most 300 graphemes on bluesky, got 301"
    }
    assert refused(platform="bluesky", caption="é" * 301, **text) == {
        "caption": "at most 300 graphemes on bluesky, got 301"
    }
    # Graphemes, not code points: 600 code points, each pair one character a reader sees.
    assert check(platform="bluesky", caption="e\u0301" * 300, **text).caption == "e\u0301" * 300
    assert check_for_platform("bluesky", [], "TEXT", "👍🏽" * 300) == {}
