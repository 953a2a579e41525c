"""Observability against live service processes.

- `promtool check metrics` accepts every service's /metrics (the API's too), and /healthz
  and /readyz answer.
- A Prometheus of the test's own (the shipped config and alert rules, 1 s intervals)
  scrapes scheduler, publisher and results while sandbox jobs go through the pipeline
  (successes, retries and permanent failures that dead-letter): every PromQL expression of
  every dashboard panel returns data, every alert rule evaluates, the lag Herald reports
  equals a Kafka client's once the pipeline has drained, and the alerts for dead letters
  and a stopped publisher fire.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from herald.shared.infra.names import Names
from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.client import HeraldClient
from tests.conftest import Namespace, eventually
from tests.support.dashboards import (
    load_dashboards,
    panel_queries,
    substitute,
    template_variables,
)
from tests.support.helpers import ServiceProcess, assert_none_in_progress, sandbox_connections
from tests.support.kafka_lag import LagKey, herald_client_lag
from tests.support.prometheus import (
    EXPECTED_ALERTS,
    Prometheus,
    binary,
    free_port,
    has_finite_value,
    http_get,
)

MEDIA = ["https://cdn.example.com/a.jpg"]
PIPELINE = ("scheduler", "publisher", "results")
# Grafana's variables: windows that cover the whole run, the platform the test uses.
VARIABLES = {
    "__rate_interval": "10m",
    "__range": "10m",
    "__interval": "15s",
    "datasource": "prometheus",
    "platform": "sandbox",
}


class Services:
    """Service processes, each with its own metrics port and replica name."""

    def __init__(self, ns: Namespace, log_dir: Path, services: tuple[str, ...]) -> None:
        self.procs: dict[str, ServiceProcess] = {}
        self.ports: dict[str, int] = {}
        for service in services:
            port = free_port()
            env = ns.env(metrics_port=port, api_port=free_port())
            env["HERALD_REPLICA"] = f"{service}-1"
            self.procs[service] = ServiceProcess(service, env, log_dir, service)
            self.ports[service] = port

    def start(self) -> Services:
        for proc in self.procs.values():
            proc.start()
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()

    def targets(self) -> list[tuple[str, str, int]]:
        return [(s, f"{s}-1", port) for s, port in self.ports.items()]

    async def get(self, service: str, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.ports[service]}{path}"
        return await asyncio.to_thread(http_get, url)

    async def metrics(self, service: str, must_contain: str = "herald_service_info") -> bytes:
        async def ready() -> bytes | None:
            proc = self.procs[service]
            assert proc.alive(), f"{service} exited:\n{proc.log()[-3000:]}"
            try:
                body = await self.get(service, "/metrics")
            except OSError:
                return None
            return body if must_contain.encode() in body else None

        body: bytes = await eventually(ready, timeout=90, interval=0.5)
        return body


def _promtool_check(body: bytes) -> None:
    check = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    output = (check.stdout + check.stderr).decode()
    assert check.returncode == 0 and not output.strip(), output


async def test_promtool_accepts_every_services_metrics(ns: Namespace, tmp_path: Path) -> None:
    binary("promtool")
    services = PIPELINE + (("api",) if (ROOT / "services/api/main.py").exists() else ())
    procs = Services(ns, tmp_path, services).start()
    try:
        for service in services:
            # the scheduler's shared-state gauges come from its loops: wait for them
            marker = "herald_consumer_lag{" if service == "scheduler" else "herald_service_info"
            body = await procs.metrics(service, marker)
            _promtool_check(body)
            assert f'service="{service}"'.encode() in body
            assert b"herald_dead_lettered_total{" in body  # known labels start at 0
            await eventually(lambda s=service: _ready(procs, s), timeout=60, interval=0.5)
            assert json.loads(await procs.get(service, "/healthz"))["status"] == "ok"
    finally:
        procs.stop()


async def _ready(procs: Services, service: str) -> bool:
    try:
        await procs.get(service, "/readyz")
        return True
    except OSError:  # 503 while a store is not yet answering
        return False


async def test_prometheus_dashboards_and_alerts_on_a_live_pipeline(
    ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    ok = await sandbox_connections(rt, 2)
    flaky = await sandbox_connections(rt, 1, metadata={"retryable_rate": 0.5})
    doomed = await sandbox_connections(rt, 1, metadata={"permanent_rate": 1})
    procs = Services(ns, tmp_path, PIPELINE).start()
    (tmp_path / "prometheus").mkdir()
    prom = Prometheus(tmp_path / "prometheus", procs.targets())
    try:
        for service in PIPELINE:
            await procs.metrics(service)
        await asyncio.to_thread(prom.start)
        # every target scraped at least once: counters are seen at 0 before they move
        await eventually(lambda: _all_up(prom, len(PIPELINE)), timeout=90, interval=0.5)

        client = HeraldClient(ns.base.kafka_bootstrap, "default", topic_prefix=ns.topic_prefix)
        plan = [*(ok * 20), *(flaky * 10), *(doomed * 8)]
        for i, connection in enumerate(plan):
            client.schedule(
                platform="sandbox",
                connection_id=connection,
                media_asset_ids=MEDIA,
                caption=f"observed {i}",
            )
        await asyncio.to_thread(client.flush)
        await eventually(lambda: _all_terminal(rt, len(plan)), timeout=300, interval=1)
        await assert_none_in_progress(rt)
        dead = await _count(rt, "SELECT count(*) AS n FROM dead_letters")
        assert dead >= 8
        await eventually(lambda: _scraped(prom, dead, len(plan) - dead), timeout=60, interval=1)

        # Once drained, the lag the scheduler reports equals a Kafka client's view.
        names = Names.from_settings(ns.settings())
        await eventually(lambda: _lag_drained_and_equal(procs, ns, names), timeout=120, interval=1)
        for service in PIPELINE:  # with observations and labels filled in
            _promtool_check(await procs.metrics(service))

        _every_panel_returns_data(prom)
        platforms = prom.api(
            "label/platform/values", **{"match[]": "herald_publish_attempts_total"}
        )
        assert "sandbox" in platforms
        await eventually(lambda: _rules_evaluated(prom), timeout=60, interval=1)

        await eventually(
            lambda: _firing(prom, "HeraldDeadLetters", reason="permanent_error"),
            timeout=90,
            interval=1,
        )

        procs.procs["publisher"].stop()
        await eventually(
            lambda: _firing(prom, "HeraldServiceDown", service="publisher"), timeout=240, interval=2
        )
        missing = await _state(prom, "HeraldServiceMissing", service="publisher")
        assert missing in {"pending", "firing"}, missing
    except BaseException:
        print(prom.log()[-4000:])
        for proc in procs.procs.values():
            print(f"--- {proc.name}\n{proc.log()[-3000:]}")
        raise
    finally:
        await asyncio.to_thread(prom.stop)
        procs.stop()


async def _all_up(prom: Prometheus, count: int) -> bool:
    health = await asyncio.to_thread(prom.targets_up)
    return len(health) == count and set(health.values()) == {"up"}


async def _count(rt: Runtime, sql: str) -> int:
    row = await rt.db.fetchone(sql)
    return int(row["n"]) if row else 0


async def _all_terminal(rt: Runtime, expected: int) -> bool:
    done = await _count(
        rt, "SELECT count(*) AS n FROM jobs WHERE status IN ('PUBLISHED', 'DEAD_LETTERED')"
    )
    return done == expected


async def _scraped(prom: Prometheus, dead: int, published: int) -> bool:
    def check() -> bool:
        seen_dead = prom.value("sum(herald_dead_lettered_total)") or 0
        seen_published = prom.value('sum(herald_publish_attempts_total{outcome="published"})') or 0
        return seen_dead >= dead and seen_published >= published

    return await asyncio.to_thread(check)


async def _lag_drained_and_equal(procs: Services, ns: Namespace, names: Names) -> bool:
    text = (await procs.get("scheduler", "/metrics")).decode()
    herald: dict[LagKey, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "herald_consumer_lag":
            for s in family.samples:
                herald[(s.labels["group"], s.labels["topic"], s.labels["partition"])] = int(s.value)
    reference = await asyncio.to_thread(herald_client_lag, ns.base.kafka_bootstrap, names)
    return bool(reference) and herald == reference and not any(reference.values())


def _every_panel_returns_data(prom: Prometheus) -> None:
    failures: list[str] = []
    count = 0
    for name, board in load_dashboards().items():
        for var in template_variables(board):
            assert var["name"] in VARIABLES, f"{name}: no test value for ${var['name']}"
        for q in panel_queries(board):
            count += 1
            expr = substitute(q.expr, VARIABLES)
            result = prom.query(expr)
            if not has_finite_value(result):
                failures.append(f"{name} / {q.panel} / {q.ref}: {expr} -> {result}")
    assert count >= 30
    assert not failures, "\n".join(failures)


async def _rules_evaluated(prom: Prometheus) -> bool:
    def check() -> bool:
        rules = prom.rules()
        assert {r["name"] for r in rules} >= EXPECTED_ALERTS
        for rule in rules:
            prom.query(rule["query"])  # valid PromQL through the HTTP API
            assert rule.get("health") != "err", rule
        return all(r.get("health") == "ok" for r in rules)

    return await asyncio.to_thread(check)


async def _state(prom: Prometheus, alert: str, **labels: str) -> str | None:
    alerts: list[dict[str, Any]] = await asyncio.to_thread(prom.alerts)
    for a in alerts:
        if a["labels"].get("alertname") == alert and all(
            a["labels"].get(k) == v for k, v in labels.items()
        ):
            return str(a["state"])
    return None


async def _firing(prom: Prometheus, alert: str, **labels: str) -> bool:
    return await _state(prom, alert, **labels) == "firing"
