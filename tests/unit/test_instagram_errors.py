"""Every row of the Instagram error classification table (reference §7.2, DESIGN "Platforms")."""

from __future__ import annotations

import json

import pytest

from herald.services.publisher.platforms.instagram.errors import (
    CODE_RULES,
    DEFAULT_QUOTA_WINDOW_SECONDS,
    PAIR_RULES,
    SUBCODE_RULES,
    Call,
    ErrorClass,
    classify,
    classify_transport,
    container_error_class,
    subcode_from_status,
)
from herald.services.publisher.platforms.meta.graph import GraphError
from herald.services.publisher.platforms.meta.usage import (
    DEFAULT_THROTTLE_SECONDS,
    parse_usage,
    throttle_seconds,
)
from herald.shared.domain.outcomes import Outcome

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


CREATE, STATUS, PUBLISH = Call.CREATE_CONTAINER, Call.CONTAINER_STATUS, Call.MEDIA_PUBLISH
READS = (Call.CONTAINER_STATUS, Call.MEDIA_READ, Call.PUBLISHING_LIMIT)
ANY = (CREATE, STATUS, PUBLISH)
AUTH, LIMITED, BLOCKED = Outcome.AUTH_ERROR, Outcome.RATE_LIMITED, Outcome.BLOCKED
RETRY, PERMANENT, AMBIGUOUS = Outcome.RETRYABLE_ERROR, Outcome.PERMANENT_ERROR, Outcome.AMBIGUOUS

# The reference's error table (§7.2, with §6.2, §8 and §9.2), written
# out by hand, independently of the tables classify() reads: (code, subcode, calls, outcome).
# Classes: A → auth_error (the connection needs re-authorising; U-then-A rows too), RL and Q →
# rate_limited, S → blocked, T / W / R → retryable_error, U and P → permanent_error. On
# media_publish, T (codes 1 and 2, server errors) is ambiguous: the post may be live (§8).
REFERENCE: list[tuple[int, int | None, tuple[Call, ...], Outcome]] = [
    # A: token expired, invalid, app removed, password changed; session; permissions
    (190, None, ANY, AUTH),
    (190, 463, ANY, AUTH),
    (190, 467, ANY, AUTH),
    (190, 458, ANY, AUTH),
    (190, 460, ANY, AUTH),
    (190, 459, ANY, AUTH),  # U, then A: the user logs in, then re-authorises
    (190, 464, ANY, AUTH),
    (190, 492, ANY, AUTH),  # U: fix the Page role; the account stops until then
    (102, None, ANY, AUTH),
    (10, None, ANY, AUTH),
    *((code, None, ANY, AUTH) for code in range(200, 300)),  # "200-299"
    # T: unknown error (possibly downtime), temporary service error
    (1, None, (CREATE, STATUS), RETRY),
    (1, None, (PUBLISH,), AMBIGUOUS),
    (2, None, (CREATE, STATUS), RETRY),
    (2, None, (PUBLISH,), AMBIGUOUS),
    # RL: app, user, Pages, custom, app-limit and BUC throttles (a publish too: §8 checks
    # the container before the retry, but the answer is a throttle)
    *((code, None, ANY, LIMITED) for code in (4, 17, 32, 613, 341, 80001, 80002)),
    # RL: the rest of Mixpost's throttle list (§9.2)
    *((code, None, ANY, LIMITED) for code in (80000, 80003, 80004, 80005, 80006, 80008)),
    (80009, None, ANY, LIMITED),
    (80014, None, ANY, LIMITED),
    # S: spam or policy block, never retried automatically
    (4, 2207051, ANY, BLOCKED),
    (368, None, ANY, BLOCKED),
    # Q: publishing quota for the rolling window (code 9 is its family)
    (9, 2207042, ANY, LIMITED),
    (9, None, ANY, LIMITED),
    # W: media not ready; poll, then publish again
    (9007, 2207027, ANY, RETRY),
    (9007, None, ANY, RETRY),
    # R: a new container (once or twice), then P
    (9004, 2207052, ANY, RETRY),
    (9004, None, ANY, RETRY),
    (-2, 2207003, ANY, RETRY),
    (-2, 2207020, ANY, RETRY),
    (-2, None, ANY, RETRY),
    (-1, 2207032, ANY, RETRY),
    (-1, 2207053, ANY, RETRY),
    (24, 2207006, ANY, RETRY),
    (24, 2207008, ANY, RETRY),  # T, then R
    (24, None, ANY, RETRY),
    (-1, 2207082, ANY, RETRY),  # undocumented; the host was the cause (Postiz retries it)
    # T/R: "Instagram server error. Try again." (on publish: a server error, so ambiguous)
    (-1, 2207001, (CREATE, STATUS), RETRY),
    (-1, 2207001, (PUBLISH,), AMBIGUOUS),
    (-1, None, (CREATE, STATUS), RETRY),
    (-1, None, (PUBLISH,), AMBIGUOUS),
    # U: account restricted, inactive or checkpointed
    (25, 2207050, ANY, PERMANENT),
    (25, None, ANY, PERMANENT),
    # P: bad input
    (1, 2207057, ANY, PERMANENT),  # note the code 1
    (352, 2207026, ANY, PERMANENT),
    (352, None, ANY, PERMANENT),
    (36000, 2207004, ANY, PERMANENT),
    (36000, None, ANY, PERMANENT),
    (36001, 2207005, ANY, PERMANENT),
    (36001, None, ANY, PERMANENT),
    (36003, 2207009, ANY, PERMANENT),
    (36003, None, ANY, PERMANENT),
    (36004, 2207010, ANY, PERMANENT),
    (36004, None, ANY, PERMANENT),
    *((100, sub, ANY, PERMANENT) for sub in (2207023, 2207028, 2207035, 2207036, 2207037)),
    (100, 2207040, ANY, PERMANENT),
    (100, None, ANY, PERMANENT),
    (506, None, ANY, PERMANENT),
    *((-1, sub, ANY, PERMANENT) for sub in (2207076, 2207077, 2207085)),  # re-encode
    (1, 2207081, ANY, PERMANENT),  # trial reels unsupported
    (100, 2207018, ANY, PERMANENT),  # invalid collaborator
    # 100/33: "object does not exist" on a fresh object: retry a read only
    (100, 33, READS, RETRY),
    (100, 33, (CREATE, PUBLISH), PERMANENT),
]
CASES = [(code, sub, call, out) for code, sub, calls, out in REFERENCE for call in calls]


@pytest.mark.parametrize(("code", "subcode", "call", "outcome"), CASES)
def test_the_reference_table(code: int, subcode: int | None, call: Call, outcome: Outcome) -> None:
    assert classify(call, envelope(code, subcode), {}, ACCOUNT).outcome is outcome


def test_every_rule_classify_reads_has_an_expectation_from_the_reference() -> None:
    written = {(code, sub) for code, sub, _, _ in REFERENCE}
    assert set(PAIR_RULES) <= written
    assert set(SUBCODE_RULES) <= {sub for _, sub in written if sub is not None}
    assert set(CODE_RULES) <= {code for code, sub in written if sub is None}


@pytest.mark.parametrize("subcode", [2207051, 2207042, 2207052, 2207010])
def test_a_subcode_wins_over_its_code(subcode: int) -> None:
    # Subcode first: whatever the code says (1 = transient, 4 = throttle), the subcode wins.
    expected = classify(Call.CREATE_CONTAINER, envelope(100, subcode)).outcome
    for code in (1, 4):
        assert classify(Call.CREATE_CONTAINER, envelope(code, subcode)).outcome is expected


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
