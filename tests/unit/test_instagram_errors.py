"""Every row of the Instagram error classification table (reference §7.2, DESIGN "Platforms")."""

from __future__ import annotations

import json

import pytest

from services.publisher.platforms.instagram_errors import (
    CODE_RULES,
    DEFAULT_QUOTA_WINDOW_SECONDS,
    DEFAULT_THROTTLE_SECONDS,
    PAIR_RULES,
    SUBCODE_RULES,
    Call,
    ErrorClass,
    GraphError,
    Rule,
    classify,
    classify_transport,
    container_error_class,
    parse_usage,
    subcode_from_status,
    throttle_seconds,
)
from shared.domain.outcomes import Outcome

ACCOUNT = "17841400000000001"
C = ErrorClass


def envelope(
    code: int | None,
    subcode: int | None = None,
    *,
    status: int = 400,
    transient: bool | None = None,
    message: str = "boom",
) -> GraphError:
    err: dict[str, object] = {"message": message, "type": "OAuthException", "fbtrace_id": "x"}
    if code is not None:
        err["code"] = code
    if subcode is not None:
        err["error_subcode"] = subcode
    if transient is not None:
        err["is_transient"] = transient
    return GraphError.parse(status, {"error": err})


# (code, subcode, call, expected class, expected outcome): the brief's table, written out.
ROWS = [
    (190, None, Call.CREATE_CONTAINER, C.AUTH, Outcome.AUTH_ERROR),
    (190, 463, Call.MEDIA_PUBLISH, C.AUTH, Outcome.AUTH_ERROR),
    (190, 460, Call.CONTAINER_STATUS, C.AUTH, Outcome.AUTH_ERROR),
    (102, None, Call.CREATE_CONTAINER, C.AUTH, Outcome.AUTH_ERROR),
    (10, None, Call.CREATE_CONTAINER, C.AUTH, Outcome.AUTH_ERROR),
    (200, None, Call.CREATE_CONTAINER, C.AUTH, Outcome.AUTH_ERROR),
    (4, None, Call.CREATE_CONTAINER, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (17, None, Call.CREATE_CONTAINER, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (32, None, Call.CONTAINER_STATUS, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (613, None, Call.CREATE_CONTAINER, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (341, None, Call.CREATE_CONTAINER, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (80001, None, Call.CREATE_CONTAINER, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (80002, None, Call.PUBLISHING_LIMIT, C.RATE_LIMIT, Outcome.RATE_LIMITED),
    (4, 2207051, Call.CREATE_CONTAINER, C.BLOCKED, Outcome.BLOCKED),
    (4, 2207051, Call.MEDIA_PUBLISH, C.BLOCKED, Outcome.BLOCKED),
    (368, None, Call.MEDIA_PUBLISH, C.BLOCKED, Outcome.BLOCKED),
    (9, 2207042, Call.MEDIA_PUBLISH, C.QUOTA, Outcome.RATE_LIMITED),
    (9007, 2207027, Call.MEDIA_PUBLISH, C.NOT_READY, Outcome.RETRYABLE_ERROR),
    (9004, 2207052, Call.CREATE_CONTAINER, C.RECREATE, Outcome.RETRYABLE_ERROR),
    (-1, 2207053, Call.CREATE_CONTAINER, C.RECREATE, Outcome.RETRYABLE_ERROR),
    (-2, 2207003, Call.CREATE_CONTAINER, C.RECREATE, Outcome.RETRYABLE_ERROR),
    (-2, 2207020, Call.MEDIA_PUBLISH, C.RECREATE, Outcome.RETRYABLE_ERROR),
    (24, 2207008, Call.MEDIA_PUBLISH, C.RECREATE, Outcome.RETRYABLE_ERROR),
    (100, 33, Call.CONTAINER_STATUS, C.RETRY_READ, Outcome.RETRYABLE_ERROR),
    (100, 33, Call.MEDIA_READ, C.RETRY_READ, Outcome.RETRYABLE_ERROR),
    (100, 33, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (1, None, Call.CREATE_CONTAINER, C.TRANSIENT, Outcome.RETRYABLE_ERROR),
    (2, None, Call.CONTAINER_STATUS, C.TRANSIENT, Outcome.RETRYABLE_ERROR),
    (-1, 2207001, Call.CREATE_CONTAINER, C.TRANSIENT, Outcome.RETRYABLE_ERROR),
    (25, 2207050, Call.CREATE_CONTAINER, C.USER_ACTION, Outcome.PERMANENT_ERROR),
    (1, 2207057, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (352, 2207026, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (36000, 2207004, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (36001, 2207005, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (36003, 2207009, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (36004, 2207010, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (100, 2207023, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (100, 2207028, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (100, None, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (100, None, Call.MEDIA_PUBLISH, C.PERMANENT, Outcome.PERMANENT_ERROR),
    (506, None, Call.CREATE_CONTAINER, C.PERMANENT, Outcome.PERMANENT_ERROR),
]


@pytest.mark.parametrize(("code", "subcode", "call", "klass", "outcome"), ROWS)
def test_documented_rows(
    code: int, subcode: int | None, call: Call, klass: ErrorClass, outcome: Outcome
) -> None:
    result = classify(call, envelope(code, subcode), {}, ACCOUNT)
    assert (result.error_class, result.outcome) == (klass, outcome)


@pytest.mark.parametrize(("key", "rule"), sorted(PAIR_RULES.items()))
def test_every_pair_row_is_reachable(key: tuple[int, int], rule: Rule) -> None:
    result = classify(Call.CREATE_CONTAINER, envelope(*key))
    assert result.error_class is rule.error_class
    if rule.on_read is not None:
        assert classify(Call.CONTAINER_STATUS, envelope(*key)).error_class is rule.on_read


@pytest.mark.parametrize("subcode", sorted(SUBCODE_RULES))
def test_every_subcode_row_wins_over_its_code(subcode: int) -> None:
    # Subcode first: whatever the code says (here 1 = transient, 4 = throttle), the subcode wins.
    for code in (1, 4, 100):
        result = classify(Call.CREATE_CONTAINER, envelope(code, subcode))
        assert result.error_class is SUBCODE_RULES[subcode].error_class


@pytest.mark.parametrize("code", sorted(CODE_RULES))
def test_every_code_row_is_reachable(code: int) -> None:
    result = classify(Call.CREATE_CONTAINER, envelope(code))
    assert result.error_class is CODE_RULES[code].error_class


def test_rate_limit_retry_after_comes_from_the_buc_header() -> None:
    buc = {
        ACCOUNT: [
            {
                "type": "instagram",
                "call_count": 100,
                "total_cputime": 5,
                "total_time": 5,
                "estimated_time_to_regain_access": 7,
            }
        ]
    }
    headers = {"X-Business-Use-Case-Usage": json.dumps(buc)}
    result = classify(Call.CREATE_CONTAINER, envelope(80002), headers, ACCOUNT)
    assert result.outcome is Outcome.RATE_LIMITED
    assert result.retry_after_seconds == 7 * 60


def test_rate_limit_retry_after_prefers_the_account_entry() -> None:
    other = [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 50}]
    mine = [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 3}]
    headers = {"X-Business-Use-Case-Usage": json.dumps({"999": other, ACCOUNT: mine})}
    assert throttle_seconds(headers, ACCOUNT) == 180
    assert throttle_seconds(headers, None) == 50 * 60


def test_rate_limit_without_estimate_uses_a_default() -> None:
    result = classify(Call.CREATE_CONTAINER, envelope(4), {}, ACCOUNT)
    assert result.retry_after_seconds == DEFAULT_THROTTLE_SECONDS
    full_app = {"X-App-Usage": json.dumps({"call_count": 100, "total_time": 3})}
    assert throttle_seconds(full_app, ACCOUNT) == DEFAULT_THROTTLE_SECONDS
    assert throttle_seconds({"X-App-Usage": "not json"}, ACCOUNT) is None


def test_usage_headers_are_percentages() -> None:
    headers = {
        "X-App-Usage": json.dumps({"call_count": 28, "total_cputime": 12, "total_time": 15}),
        "X-Business-Use-Case-Usage": json.dumps(
            {
                ACCOUNT: [
                    {"type": "instagram", "call_count": 91, "estimated_time_to_regain_access": 0}
                ]
            }
        ),
    }
    usage = parse_usage(headers, ACCOUNT)
    assert (usage.app_percent, usage.account_percent, usage.regain_seconds) == (28, 91, None)
    assert usage.percent == 91


def test_quota_waits_for_the_window() -> None:
    result = classify(Call.MEDIA_PUBLISH, envelope(9, 2207042))
    assert result.retry_after_seconds == DEFAULT_QUOTA_WINDOW_SECONDS
    assert not result.check_status  # a definite answer: nothing was published


@pytest.mark.parametrize(
    ("error", "check"),
    [
        (envelope(1, status=500), True),  # unknown error, 5xx
        (envelope(2), True),
        (envelope(None, status=502), True),  # not an envelope at all
        (envelope(12345), True),  # a code nobody documented
        (envelope(100, 2207010, status=503), True),  # any 5xx
        (envelope(4, 2207051), True),  # blocked: the post may be live anyway (Postiz #1681)
        (envelope(80002), True),  # a throttle answer to publish is not definite either
        (envelope(9, 2207042), False),
        (envelope(9007, 2207027), False),
        (envelope(190), False),
        (envelope(100), False),
    ],
)
def test_media_publish_answers_that_may_hide_a_live_post(error: GraphError, check: bool) -> None:
    result = classify(Call.MEDIA_PUBLISH, error)
    assert result.check_status is check


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_media_publish_5xx_is_ambiguous(status: int) -> None:
    result = classify(Call.MEDIA_PUBLISH, envelope(1, status=status))
    assert result.outcome is Outcome.AMBIGUOUS


def test_media_publish_unknown_error_is_ambiguous_elsewhere_permanent() -> None:
    assert classify(Call.MEDIA_PUBLISH, envelope(777)).outcome is Outcome.AMBIGUOUS
    assert classify(Call.CREATE_CONTAINER, envelope(777)).outcome is Outcome.PERMANENT_ERROR


@pytest.mark.parametrize("what", ["timeout", "ServerDisconnectedError: Server disconnected"])
def test_transport_failures(what: str) -> None:
    assert classify_transport(Call.MEDIA_PUBLISH, what).outcome is Outcome.AMBIGUOUS
    assert classify_transport(Call.MEDIA_PUBLISH, what).check_status
    assert classify_transport(Call.CREATE_CONTAINER, what).outcome is Outcome.RETRYABLE_ERROR
    assert classify_transport(Call.CONTAINER_STATUS, what).outcome is Outcome.RETRYABLE_ERROR


def test_is_transient_and_http_status_come_after_codes() -> None:
    transient = envelope(777, transient=True)
    assert classify(Call.CREATE_CONTAINER, transient).error_class is C.TRANSIENT
    # a documented code wins over is_transient (2207051 is code 4 with is_transient false)
    assert (
        classify(Call.CREATE_CONTAINER, envelope(4, 2207051, transient=True)).error_class
        is C.BLOCKED
    )
    assert classify(Call.CREATE_CONTAINER, envelope(None, status=429)).error_class is C.RATE_LIMIT
    assert classify(Call.CREATE_CONTAINER, envelope(None, status=503)).error_class is C.TRANSIENT
    unparsed = GraphError.parse(502, "<html>Bad gateway</html>")
    assert classify(Call.CREATE_CONTAINER, unparsed).error_class is C.TRANSIENT


def test_envelope_parsing() -> None:
    body = {
        "error": {
            "message": "The image size is too large.",
            "type": "OAuthException",
            "code": 36000,
            "error_subcode": 2207004,
            "is_transient": False,
            "error_user_title": "Image size too large",
            "error_user_msg": "It should be less than 8 MiB.",
            "fbtrace_id": "A6LJylpZRKw2xKLFsAP-cJh",
        }
    }
    err = GraphError.parse(400, body)
    assert (err.code, err.subcode, err.is_transient, err.fbtrace_id) == (
        36000,
        2207004,
        False,
        "A6LJylpZRKw2xKLFsAP-cJh",
    )
    assert err.describe() == "The image size is too large.: It should be less than 8 MiB."
    assert GraphError.parse(400, {"error": {"code": "190"}}).code == 190


def test_container_error_status() -> None:
    text = "Error: Media upload has failed with error code 2207026"
    assert subcode_from_status(text) == 2207026
    assert subcode_from_status("Error") is None
    assert container_error_class(text) is C.PERMANENT
    assert container_error_class("failed with error code 2207052") is C.RECREATE
    assert container_error_class(None) is C.PERMANENT
