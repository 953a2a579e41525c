"""The dashboards, alert rules and Prometheus config as files: generated JSON up to date,
queries that use only Herald's metrics (shared-state gauges through `max`), histogram
buckets that fit the figures, and promtool's checks."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client.metrics import MetricWrapperBase

from herald.shared.infra import metrics
from herald.shared.infra.paths import DEPLOY_DIR
from stack.config import PROMETHEUS_DIR, PROMETHEUS_TEMPLATE
from stack.render import render_prometheus_config
from tests.support.dashboards import (
    ALERTS_FILE,
    SHARED_GAUGES,
    load_dashboards,
    metric_names,
    panel_queries,
    substitute,
    template_variables,
    wrapped_in_max,
)
from tests.support.prometheus import EXPECTED_ALERTS

IN_CI = os.environ.get("CI", "").lower() == "true"


def _generator() -> ModuleType:
    """`deploy/grafana/generate.py`, loaded as the script it is (its folder on the path, where
    it finds `panels.py`)."""
    folder = str(DEPLOY_DIR / "grafana")
    if folder not in sys.path:
        sys.path.append(folder)
    path = DEPLOY_DIR / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("herald_grafana_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exported_names() -> set[str]:
    """Every sample name shared/infra/metrics.py exports."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + s for s in suffixes[family.type]}
    return names


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        if IN_CI:
            pytest.fail("promtool is missing (Debian package `prometheus`; `herald stack up`)")
        pytest.skip("promtool is missing")
    return binary


def test_committed_dashboards_match_the_generator() -> None:
    built = _generator().build()
    committed = {p.name: p.read_text() for p in (DEPLOY_DIR / "grafana/dashboards").glob("*.json")}
    assert set(built) == set(committed) == {"herald-overview.json", "herald-platform.json"}
    for name, text in built.items():
        assert committed[name] == text, f"{name} is stale: python deploy/grafana/generate.py"


def test_every_panel_has_queries_using_only_herald_metrics() -> None:
    exported = _exported_names()
    boards = load_dashboards()
    for board in boards.values():
        queries = panel_queries(board)
        panels = {q.panel for q in queries}
        assert len(panels) == len([p for p in board["panels"] if p["type"] != "row"])
        for q in queries:
            used = metric_names(q.expr)
            assert used, q
            assert used <= exported, (q, used - exported)


def test_shared_state_gauges_are_aggregated_with_max() -> None:
    exprs = [q.expr for b in load_dashboards().values() for q in panel_queries(b)]
    exprs.append(ALERTS_FILE.read_text())
    for expr in exprs:
        for gauge in SHARED_GAUGES:
            assert wrapped_in_max(expr, gauge), (gauge, expr)


def test_overview_covers_what_operators_watch() -> None:
    board = load_dashboards()["herald-overview.json"]
    text = " ".join(q.expr for q in panel_queries(board))
    for metric in (
        "herald_jobs_scheduled_total",
        "herald_delayed_queue_depth",
        "herald_due_backlog",
        "herald_dispatch_lag_seconds_bucket",
        "herald_end_to_end_lag_seconds_bucket",
        "herald_publish_attempts_total",
        "herald_retries_scheduled_total",
        "herald_dead_lettered_total",
        "herald_consumer_lag",
        "herald_publish_duration_seconds_bucket",
    ):
        assert metric in text, metric


def test_platform_view_filters_on_its_platform_variable() -> None:
    board = load_dashboards()["herald-platform.json"]
    assert "platform" in {v["name"] for v in template_variables(board)}
    for q in panel_queries(board):
        assert 'platform=~"$platform"' in q.expr, q


def test_substitution_of_grafana_variables() -> None:
    values = {"__rate_interval": "5m", "platform": "sandbox", "__range": "1h"}
    assert substitute('rate(x{p=~"$platform"}[$__rate_interval])', values) == (
        'rate(x{p=~"sandbox"}[5m])'
    )
    assert substitute("${platform:regex} [[platform]] $__range", values) == "sandbox sandbox 1h"
    with pytest.raises(KeyError):
        substitute("$unknown", values)


def test_wrapped_in_max() -> None:
    assert wrapped_in_max("max by (a, b) (herald_due_backlog)", "herald_due_backlog")
    assert wrapped_in_max("max(deriv(herald_due_backlog[5m]))", "herald_due_backlog")
    assert not wrapped_in_max("sum(herald_due_backlog)", "herald_due_backlog")
    assert not wrapped_in_max("max(herald_due_backlog) + herald_due_backlog", "herald_due_backlog")


def test_histogram_buckets_fit_the_figures() -> None:
    def buckets(h: object) -> list[float]:
        return [float(b) for b in h._upper_bounds if b != float("inf")]  # type: ignore[attr-defined]

    dispatch, publish = buckets(metrics.DISPATCH_LAG), buckets(metrics.PUBLISH_DURATION)
    assert dispatch[0] == 0.005 and dispatch[-1] == 60
    assert publish[0] == 0.01 and publish[-1] == 120


def test_alert_rules_pass_promtool_and_cover_the_cases() -> None:
    check = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    text = ALERTS_FILE.read_text()
    assert metric_names(text) <= _exported_names() | {"herald_service_info"}
    alerts = re.findall(r"^\s*- alert: (\w+)$", text, re.MULTILINE)
    assert set(alerts) >= EXPECTED_ALERTS
    # each rule has a `for`, a severity and both annotations
    for field in ("for:", "severity:", "summary:", "description:"):
        assert text.count(field) == len(alerts), field


def test_an_unreadable_result_fires_a_critical_alert(tmp_path: Path) -> None:
    description = (
        "1 jobs in the last 5 minutes were dead-lettered because the publisher's result for"
        " their attempt could not be read (a publisher bug, or a result that names another"
        " tenant, platform or connection). Their posts may be live: check them on the"
        " platform, then redrive with force (`herald dlq redrive --reason unreadable_result"
        " --force`), which reads the status before posting again."
    )
    tests = tmp_path / "unreadable.yml"
    tests.write_text(
        f"""
rule_files: [{ALERTS_FILE}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'herald_dead_lettered_total{{reason="unreadable_result"}}'
        values: '0 0 1 1 1 1 1 1 1 1'
      - series: 'herald_dead_lettered_total{{reason="exhausted"}}'
        values: '0 0 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 1m
        alertname: HeraldUnreadableResults
        exp_alerts: []
      - eval_time: 3m
        alertname: HeraldUnreadableResults
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: "Publisher results cannot be read; their posts may be live"
              description: "{description}"
"""
    )
    run = subprocess.run(
        [_promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_rendered_local_config_passes_promtool(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text("[]\n")
    rendered = render_prometheus_config(
        PROMETHEUS_TEMPLATE.read_text(), targets_file=targets, rules_dir=PROMETHEUS_DIR
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(rendered)
    check = subprocess.run(
        [_promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert str(targets) in rendered and str(PROMETHEUS_DIR / "alerts.yml") in rendered
