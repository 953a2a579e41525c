"""The pieces Herald's dashboards are made of (`generate.py` puts them together): a panel,
a row layout, a query's selector, rate and quantiles, the datasource variable and the
dashboard around the panels. Plain dicts in Grafana's dashboard JSON model (schemaVersion
39): one panel helper, one way to write a query.
"""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
ATTEMPTS = "herald_publish_attempts_total"
DEAD = "herald_dead_lettered_total"
REAUTH = 'status="needs_reauth"'
PUBLISHED = 'outcome="published"'
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
