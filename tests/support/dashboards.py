"""PromQL of the Grafana dashboards and alert rules, ready to send to Prometheus.

`panel_queries` walks a dashboard (rows with nested panels included) and yields every
target's expression; `substitute` replaces Grafana's variables (`$__rate_interval`,
`$__range`, `$__interval`, template variables in `$x`, `${x}`, `${x:fmt}` and `[[x]]`
forms) with values Prometheus understands. `metric_names` and `wrapped_in_max` check which
metrics a query uses and how shared-state gauges are aggregated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herald.shared.infra.paths import DEPLOY_DIR

DASHBOARD_DIR = DEPLOY_DIR / "grafana" / "dashboards"
ALERTS_FILE = DEPLOY_DIR / "prometheus" / "alerts.yml"

# Gauges of shared state: every copy reports the same value, so queries take `max`.
SHARED_GAUGES = (
    "herald_delayed_queue_depth",
    "herald_due_backlog",
    "herald_consumer_lag",
    "herald_topic_messages",
    "herald_connections",
)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_METRIC = re.compile(r"\b(herald_[a-z0-9_]+)\b")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str


def load_dashboards(folder: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def panel_queries(board: Mapping[str, Any]) -> list[PanelQuery]:
    title = str(board.get("title", "?"))
    return [
        PanelQuery(title, str(p.get("title", "?")), str(t.get("refId", "?")), str(t["expr"]))
        for p in _panels(list(board.get("panels", [])))
        for t in p.get("targets", [])
        if t.get("expr")
    ]


def template_variables(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(board.get("templating", {}).get("list", []))


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables; an unknown one raises KeyError (a query that cannot run)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values[name]

    return _VARIABLE.sub(one, expr)


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


_MAX_BEFORE = re.compile(r"max(?:\s+by\s*\([^()]*\))?\s*\(\s*(?:(?:deriv|delta)\s*\(\s*)?$")


def wrapped_in_max(expr: str, metric: str) -> bool:
    """Every use of `metric` in `expr` is directly inside `max(...)` / `max by (...) (...)`
    (a `deriv(`/`delta(` in between allowed)."""
    uses = [m.start() for m in re.finditer(rf"\b{metric}\b", expr)]
    return all(_MAX_BEFORE.search(expr[:start]) for start in uses)
