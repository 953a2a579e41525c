"""Generate Herald's Grafana dashboards as JSON (committed in deploy/grafana/dashboards/).

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 when the committed JSON is stale

Plain dicts in Grafana's dashboard JSON model (schemaVersion 39), so the dashboards stay
consistent: one panel helper, one way to write a query. Panels use only the metrics of
`shared/infra/metrics.py`; gauges of shared state (queue, backlog, consumer lag, topic sizes,
connections) are the same in every copy that reports them, so they are taken with `max`;
counters and histograms are summed over copies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
Panel = dict[str, Any]
Target = tuple[str, str]  # (PromQL, legend)


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "range": True, "refId": ref}


def panel(
    kind: str,
    title: str,
    targets: list[Target],
    *,
    unit: str = "short",
    description: str = "",
    stack: bool = False,
) -> Panel:
    """A panel without id and position (`layout` sets them)."""
    custom: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if kind == "timeseries":
        custom = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        }
        options = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": options,
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
    }


Cell = tuple[Panel, int, int]  # a panel with its width and height


def timeseries(title: str, targets: list[Target], w: int = 12, h: int = 8, **kw: Any) -> Cell:
    return panel("timeseries", title, targets, **kw), w, h


def stat(title: str, targets: list[Target], w: int = 4, h: int = 4, **kw: Any) -> Cell:
    return panel("stat", title, targets, **kw), w, h


def layout(rows: list[list[Cell]]) -> list[Panel]:
    """Rows of cells on Grafana's 24-column grid; assigns ids and positions."""
    panels: list[Panel] = []
    y = 0
    for row in rows:
        x = 0
        for p, w, h in row:
            panels.append(p | {"id": len(panels) + 1, "gridPos": {"x": x, "y": y, "w": w, "h": h}})
            x += w
        y += max(h for _, _, h in row)
    return panels


def sel(*matchers: str) -> str:
    """A label selector from matchers (empty matchers left out)."""
    kept = [m for m in matchers if m]
    return "{" + ", ".join(kept) + "}" if kept else ""


def rate(metric: str, selector: str = "", by: str = "", fn: str = "rate") -> str:
    """Per-second rate (or `fn`, e.g. increase) of a counter, summed over copies."""
    inner = f"{fn}({metric}{selector}[{RATE}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantiles(metric: str, group: str = "", selector: str = "") -> list[Target]:
    """p50, p90 and p99 of a histogram, summed over copies (and split by `group`)."""
    by = f"le, {group}" if group else "le"
    suffix = f" {{{{{group}}}}}" if group else ""
    buckets = rate(f"{metric}_bucket", selector, by)
    return [
        (f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)}{suffix}")
        for q in (0.5, 0.9, 0.99)
    ]


def success_ratio(by: str, matcher: str = "") -> str:
    """Published attempts / attempts, rate-limited requeues left out."""
    published = rate(ATTEMPTS, sel(matcher, PUBLISHED), by)
    attempts = rate(ATTEMPTS, sel(matcher, 'outcome!="rate_limited"'), by)
    return f"{published} / {attempts}"


def lag(by: str) -> str:
    return f"sum by ({by}) (max by (group, topic, partition) (herald_consumer_lag))"


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
        "hide": 0,
        "refresh": 1,
        "options": [],
        "regex": "",
    }


def dashboard(
    uid: str, title: str, panels: list[Panel], variables: list[dict[str, Any]], description: str
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["herald"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Herald",
                "type": "dashboards",
                "tags": ["herald"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


ATTEMPTS = "herald_publish_attempts_total"
DEAD = "herald_dead_lettered_total"
REAUTH = 'status="needs_reauth"'
PUBLISHED = 'outcome="published"'


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
                w=24,
                h=7,
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
