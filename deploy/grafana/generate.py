"""Generate Herald's Grafana dashboards as JSON (committed in deploy/grafana/dashboards/).

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 when the committed JSON is stale

Built from the pieces in `panels.py` (found beside this script), so the dashboards stay
consistent. Panels use only the metrics of `shared/infra/metrics.py`; gauges of shared state
(queue, backlog, consumer lag, topic sizes, connections) are the same in every copy that
reports them, so they are taken with `max`; counters and histograms are summed over copies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from panels import (  # deploy/grafana/panels.py
    ATTEMPTS,
    DEAD,
    DS,
    PUBLISHED,
    REAUTH,
    dashboard,
    lag,
    layout,
    quantiles,
    rate,
    sel,
    stat,
    success_ratio,
    timeseries,
)

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"


def overview() -> dict[str, Any]:
    rows = [
        [
            stat(
                "Service processes",
                [("count by (service) (herald_service_info)", "{{service}}")],
                w=8,
                description="Processes reporting herald_service_info, by service.",
            ),
            stat("Delayed queue depth", [("max(herald_delayed_queue_depth)", "depth")]),
            stat("Due backlog", [("max(herald_due_backlog)", "due")]),
            stat("Dead letters (range)", [(f"sum(increase({DEAD}[$__range]))", "dead letters")]),
            stat(
                "Connections needing re-auth",
                [(f"sum(max by (platform) (herald_connections{sel(REAUTH)}))", "needs_reauth")],
            ),
        ],
        [
            timeseries(
                "Throughput in and out",
                [
                    (rate("herald_jobs_scheduled_total"), "scheduled"),
                    (rate("herald_jobs_dispatched_total"), "dispatched"),
                    (rate(ATTEMPTS, sel(PUBLISHED)), "published"),
                    (rate(DEAD), "dead-lettered"),
                ],
                unit="ops",
                description="Jobs per second entering and leaving the pipeline.",
            ),
            timeseries(
                "Delayed queue depth and due backlog",
                [
                    ("max(herald_delayed_queue_depth)", "delayed queue"),
                    ("max(herald_due_backlog)", "due backlog"),
                ],
                description="The Redis delayed queue (every waiting job) and the jobs already "
                "due but not dispatched (claimed ones included).",
            ),
        ],
        [
            timeseries(
                "Dispatch lag",
                quantiles("herald_dispatch_lag_seconds"),
                unit="s",
                description="Dispatch time minus the attempt's due time.",
            ),
            timeseries(
                "End-to-end lag",
                quantiles("herald_end_to_end_lag_seconds"),
                unit="s",
                description="published_at minus scheduled_at.",
            ),
        ],
        [
            timeseries(
                "Outcomes by platform",
                [(rate(ATTEMPTS, by="platform, outcome"), "{{platform}} {{outcome}}")],
                unit="ops",
                stack=True,
            ),
            timeseries(
                "Success ratio by platform",
                [(success_ratio("platform"), "{{platform}}")],
                unit="percentunit",
                description="Published attempts / attempts (rate-limited requeues not counted).",
            ),
        ],
        [
            timeseries(
                "Retries and rate limits",
                [
                    (rate("herald_retries_scheduled_total"), "retries scheduled"),
                    (rate("herald_rate_limited_total", by="platform"), "rate limited {{platform}}"),
                ],
                unit="ops",
            ),
            timeseries(
                "Dead letters by reason",
                [(rate(DEAD, by="reason", fn="increase"), "{{reason}}")],
                stack=True,
            ),
            timeseries(
                "Results waiting for a publisher backlog",
                [(rate("herald_results_held_seconds_total"), "share of time held")],
                unit="percentunit",
                description="Results wait (at most HERALD_RESULTS_HOLD_SECONDS) while the"
                " publishers are behind, so posts go out first (decision 0012).",
            ),
        ],
        [
            timeseries(
                "Consumer lag by partition",
                [
                    (
                        "max by (group, topic, partition) (herald_consumer_lag)",
                        "{{group}} {{topic}}[{{partition}}]",
                    ),
                ],
                description="High watermark minus committed offset, read from the broker.",
            ),
            timeseries("Consumer lag by group", [(lag("group"), "{{group}}")]),
        ],
        [
            timeseries(
                "Publish latency",
                quantiles("herald_publish_duration_seconds", "platform"),
                unit="s",
                description="Time of one attempt's platform work.",
            ),
            timeseries(
                "Messages held by topic",
                [
                    (
                        "sum by (topic) (max by (topic, partition) (herald_topic_messages))",
                        "{{topic}}",
                    ),
                ],
                description="High minus low watermark, summed over partitions.",
            ),
        ],
        [
            timeseries(
                "Connections by platform and status",
                [
                    ("max by (platform, status) (herald_connections)", "{{platform}} {{status}}"),
                ],
                w=24,
                h=7,
            ),
        ],
    ]
    return dashboard(
        "herald-overview",
        "Herald / Pipeline overview",
        layout(rows),
        [],
        "Scheduled posts through scheduler, publishers and results.",
    )


def platform_view() -> dict[str, Any]:
    mine = 'platform=~"$platform"'
    rows = [
        [
            stat(
                "Published (range)",
                [(f"sum(increase({ATTEMPTS}{sel(mine, PUBLISHED)}[$__range]))", "published")],
                w=6,
            ),
            stat(
                "Success ratio",
                [(success_ratio("platform", mine), "{{platform}}")],
                unit="percentunit",
                w=6,
            ),
            stat(
                "Rate limited (range)",
                [
                    (
                        f"sum(increase(herald_rate_limited_total{sel(mine)}[$__range]))",
                        "rate limited",
                    )
                ],
                w=6,
            ),
            stat(
                "Connections needing re-auth",
                [
                    (
                        f"sum(max by (platform) (herald_connections{sel(mine, REAUTH)}))",
                        "needs_reauth",
                    )
                ],
                w=6,
            ),
        ],
        [
            timeseries(
                "Attempts by outcome",
                [(rate(ATTEMPTS, sel(mine), "outcome"), "{{outcome}}")],
                unit="ops",
                stack=True,
            ),
            timeseries(
                "Failed attempts by outcome",
                [
                    (
                        rate(ATTEMPTS, sel(mine, 'outcome!="published"'), "outcome", fn="increase"),
                        "{{outcome}}",
                    ),
                ],
                stack=True,
            ),
        ],
        [
            timeseries(
                "Publish latency",
                quantiles("herald_publish_duration_seconds", selector=sel(mine)),
                unit="s",
            ),
            timeseries(
                "Rate-limited attempts",
                [
                    (rate("herald_rate_limited_total", sel(mine), "platform"), "{{platform}}"),
                ],
                unit="ops",
            ),
        ],
        [
            timeseries(
                "Connections by status",
                [
                    (
                        f"max by (platform, status) (herald_connections{sel(mine)})",
                        "{{platform}} {{status}}",
                    ),
                ],
            ),
            timeseries(
                "Token refreshes by result",
                [
                    (
                        rate(
                            "herald_token_refreshes_total",
                            sel(mine),
                            "platform, result",
                            fn="increase",
                        ),
                        "{{platform}} {{result}}",
                    ),
                ],
                description="Refreshes ahead of expiry; failed ones are tried again later,"
                " auth_lost ones need a new sign-in (the connection is needs_reauth).",
            ),
        ],
    ]
    platform_var = {
        "name": "platform",
        "label": "Platform",
        "type": "query",
        "datasource": DS,
        "definition": f"label_values({ATTEMPTS}, platform)",
        "query": {"query": f"label_values({ATTEMPTS}, platform)", "refId": "platform"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "sort": 1,
        "current": {"text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "options": [],
        "regex": "",
    }
    return dashboard(
        "herald-platform",
        "Herald / Platform",
        layout(rows),
        [platform_var],
        "One platform's attempts, outcomes, latency, rate limits and connections.",
    )


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def build() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        "herald-overview.json": render(overview()),
        "herald-platform.json": render(platform_view()),
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, text in build().items():
        path = DASHBOARDS / name
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    if stale:
        print(f"stale dashboards (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
