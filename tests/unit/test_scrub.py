"""The token scrubber touches free text only: never ids, enums or the fields of a result."""

from __future__ import annotations

from datetime import UTC, datetime

from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import PublishRequest
from herald.shared.messages.result import result_value
from herald.shared.platforms.scrub import REDACTED, Scrubber

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
JOB = "a1b2c3d4-0000-4000-8000-0000000000aa"
CONNECTION = "c0ffee00-aaaa-4bbb-8ccc-dddddddddddd"


def request() -> PublishRequest:
    return PublishRequest(
        job_id=JOB,
        tenant_id="default",
        post_id=JOB,
        platform="sandbox",
        connection_id=CONNECTION,
        attempt=1,
        media_asset_ids=["https://cdn.example.com/a.jpg"],
        caption="x",
        media_type=None,
        scheduled_at=NOW,
        due_at=NOW,
        publish_deadline=NOW,
        trace_id="trace-x",
    )


def test_a_one_letter_token_never_rewrites_a_result() -> None:
    outcome = PublishOutcome(
        Outcome.PUBLISHED,
        error_message="sandbox said x",
        provider_ids={"sandbox_post_id": "xa1"},
        provider_response={"box": ["x", 1, {"x": "sandbox"}]},
        published_at=NOW,
    )
    for token in ("x", "a", "1", "sandbox", "published", "default", "-"):
        scrubbed = Scrubber(token).outcome(outcome)
        value = result_value(request(), scrubbed, worker="w", started_at=NOW, finished_at=NOW)
        plain = result_value(request(), outcome, worker="w", started_at=NOW, finished_at=NOW)
        structural = set(plain) - {"error_message", "provider_response"}
        assert {k: value[k] for k in structural} == {k: plain[k] for k in structural}, token
        assert token not in (value["error_message"] or "").replace(REDACTED, ""), token


def test_free_text_loses_every_form_of_the_token() -> None:
    token = "EAAG tok/en+="
    scrub = Scrubber(token)
    outcome = PublishOutcome(
        Outcome.RETRYABLE_ERROR,
        error_message=f"bad token {token} (EAAG%20tok%2Fen%2B%3D, EAAG+tok%2Fen%2B%3D)",
        provider_response={"echo": {token: [token, f"?access_token={token}"]}, "n": 3},
    )
    out = scrub.outcome(outcome)
    text = f"{out.error_message} {out.provider_response}"
    assert "tok/en" not in text and "tok%2Fen" not in text
    assert out.error_message == f"bad token {REDACTED} ({REDACTED}, {REDACTED})"
    assert out.provider_response == {
        "echo": {REDACTED: [REDACTED, f"?access_token={REDACTED}"]},
        "n": 3,
    }


def test_no_token_changes_nothing() -> None:
    outcome = PublishOutcome(Outcome.PUBLISHED, error_message="fine")
    assert Scrubber("").outcome(outcome) is outcome
