"""Prometheus metrics. The names are a contract for the dashboards (DESIGN.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from herald.shared import __version__
from herald.shared.domain.outcomes import DeadLetterReason, Outcome
from herald.shared.domain.platforms import CONNECTION_STATUSES
from herald.shared.platforms.registry import platforms

SERVICE_INFO = Gauge(
    "herald_service_info", "One per running process", ["service", "replica", "version"]
)
JOBS_SCHEDULED = Counter("herald_jobs_scheduled_total", "Jobs accepted for scheduling")
DELAYED_QUEUE_DEPTH = Gauge("herald_delayed_queue_depth", "Jobs waiting in the Redis queue")
DUE_BACKLOG = Gauge("herald_due_backlog", "Jobs due now but not yet dispatched")
# Buckets (docs/decisions/0006-observability.md): dispatch lag from 5 ms to 60 s, publish
# duration from 10 ms to 120 s, end-to-end lag from 25 ms to 6 h (retries and backoff).
DISPATCH_LAG = Histogram(
    "herald_dispatch_lag_seconds",
    "Dispatch time minus the attempt's due time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JOBS_DISPATCHED = Counter("herald_jobs_dispatched_total", "Requests produced to publish.request")
PUBLISH_ATTEMPTS = Counter(
    "herald_publish_attempts_total", "Finished attempts by outcome", ["platform", "outcome"]
)
PUBLISH_DURATION = Histogram(
    "herald_publish_duration_seconds",
    "Time of one attempt's platform work",
    ["platform"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
END_TO_END_LAG = Histogram(
    "herald_end_to_end_lag_seconds",
    "published_at minus scheduled_at",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 300, 900, 3600, 21600),
)
RESULTS_HELD = Counter(
    "herald_results_held_seconds_total",
    "Seconds the results service waited while the publishers had a backlog",
)
RETRIES_SCHEDULED = Counter("herald_retries_scheduled_total", "Failed attempts requeued")
DEAD_LETTERED = Counter("herald_dead_lettered_total", "Dead letters by reason", ["reason"])
CONSUMER_LAG = Gauge("herald_consumer_lag", "Committed-offset lag", ["group", "topic", "partition"])
TOPIC_MESSAGES = Gauge(
    "herald_topic_messages", "Messages held per partition", ["topic", "partition"]
)
RATE_LIMITED = Counter("herald_rate_limited_total", "Rate-limited attempts", ["platform"])
CONNECTIONS = Gauge("herald_connections", "Connections by status", ["platform", "status"])
TOKEN_REFRESHES = Counter(
    "herald_token_refreshes_total",
    "Token refreshes by platform and result (refreshed, failed: retried later, auth_lost)",
    ["platform", "result"],
)
TOKEN_RESULTS = ("refreshed", "failed", "auth_lost")
BUILD = Info("herald_build", "Herald build information")


def start_counters() -> None:
    """Counters (and histograms) with known label values start at 0, so the first scrape
    already sees them and rates cover the first observations."""
    for platform in platforms():
        RATE_LIMITED.labels(platform)
        PUBLISH_DURATION.labels(platform)
        for outcome in Outcome:
            PUBLISH_ATTEMPTS.labels(platform, outcome.value)
        for result in TOKEN_RESULTS:
            TOKEN_REFRESHES.labels(platform, result)
        for status in CONNECTION_STATUSES:
            CONNECTIONS.labels(platform, status)
    for reason in DeadLetterReason:
        DEAD_LETTERED.labels(reason.value)


def register_process(service: str, replica: str) -> None:
    SERVICE_INFO.labels(service, replica, __version__).set(1)
    BUILD.info({"version": __version__})
    start_counters()
