"""`herald bench` works end to end (tiny runs); figures are printed, never asserted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench import leftovers
from herald.shared.infra.kafka.admin import create_topics, load_topic_specs
from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace, eventually


def _herald_bench(ns: Namespace, *argv: str) -> dict[str, Any]:
    """`herald bench ARGV` in the test's namespace; its JSON output."""
    run = subprocess.run(
        [sys.executable, "-m", "herald", "bench", *argv],
        cwd=ROOT,
        env=ns.env(),
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed: dict[str, Any] = json.loads(run.stdout)
    return printed


def _bench(ns: Namespace, out: Path, *argv: str) -> dict[str, Any]:
    return _herald_bench(ns, *argv, "--no-limits", "--out", str(out))


def test_a_tiny_burst_prints_figures_and_writes_json_and_png(ns: Namespace, tmp_path: Path) -> None:
    figures = _bench(ns, tmp_path, "burst", "-n", "200")
    assert figures["jobs"] == 200 and figures["published"] == 200
    assert {"p50", "p99"} <= set(figures["end_to_end_lag_s"])
    assert 0.5 <= figures["busiest_copy_share"] <= 1.0  # 2 publisher copies by default
    assert set(figures["status_lag_s"]) == {"p50", "p95", "p99", "max"}  # for every post
    assert list(tmp_path.glob("burst-*.json")) and list(tmp_path.glob("burst-*.png"))


def test_a_tiny_fairness_run_times_the_other_tenants_jobs(ns: Namespace, tmp_path: Path) -> None:
    figures = _bench(ns, tmp_path, "fairness", "-n", "300", "--accounts", "3")
    assert figures["tenant_a_jobs"] == 300 and figures["tenant_b_jobs"] == 5
    assert figures["connections"] == 3
    assert figures["jobs"] == figures["published"] == 310  # B's five at once, five later
    for group in ("tenant_b", "tenant_b_mid_burst"):
        for key in (f"{group}_to_request_s", f"{group}_to_call_s"):
            assert set(figures[key]) == {"p50", "p95", "p99", "max"}
        assert f"{group}_within_target" in figures
    assert figures["tenant_b_target_s"] == 0.3
    assert 0 <= figures["tenant_a_calls_after_mid_burst_due"] <= 300


def test_a_tiny_steady_run_times_each_job_to_kafka_the_call_and_postgres(
    ns: Namespace, tmp_path: Path
) -> None:
    figures = _bench(ns, tmp_path, "steady", "--rate", "40", "--seconds", "2")
    assert figures["jobs"] == figures["done"] > 0
    # The fresh pipeline's first seconds are reported apart; the rest count.
    warm_up = figures["warm_up"]
    assert warm_up["jobs"] > 0 and figures["counted_jobs"] > 0
    assert warm_up["jobs"] + figures["counted_jobs"] == figures["jobs"]
    assert set(warm_up["due_to_request_ms"]) == {"min", "p50", "p95", "p99", "max"}
    assert 2 <= len(figures["due_to_request_p99_by_second_ms"]) <= 3
    for point in ("request", "call", "stored"):
        assert set(figures[f"due_to_{point}_ms"]) == {"min", "p50", "p95", "p99", "max"}
        assert "target" in figures["against_targets"][f"due_to_{point}_p99"]
    # Jobs leave up to DISPATCH_LEAD_SECONDS early; their platform calls never do.
    assert figures["calls_before_due"] == 0 and figures["due_to_call_ms"]["min"] >= 0
    assert set(figures["stages_ms"]) == {
        "due_to_dispatcher_mark",
        "mark_to_request",
        "request_to_publisher_claim",
        "claim_to_call",
        "call_to_stored",
    }


def test_a_tiny_memory_run_samples_the_publishers_rss(ns: Namespace, tmp_path: Path) -> None:
    figures = _bench(ns, tmp_path, "memory", "-n", "200")
    assert figures["jobs"] == 200 and figures["published"] == 200
    assert figures["publishers"] == 1 and figures["max_in_flight"] == 1000
    assert figures["rss_mb_peak"] >= figures["rss_mb_p50"] > 0 and figures["rss_mb_before"] > 0
    assert "series" not in figures  # kept for the JSON and the chart
    [saved] = tmp_path.glob("memory-*.json")
    assert saved.with_suffix(".png").exists()
    series = json.loads(saved.read_text())["figures"]["series"]
    assert len(series["t_s"]) == len(series["rss_mb"]) == len(series["calls_in_flight"]) > 0


def test_repeat_prints_medians_with_ranges_and_keeps_every_run(
    ns: Namespace, tmp_path: Path
) -> None:
    figures = _bench(ns, tmp_path, "burst", "-n", "100", "--repeat", "2")
    assert figures["jobs"] == 100 and figures["published"] == 100
    assert figures["repeat"]["runs"] == 2
    low, high = figures["repeat"]["range"]["throughput_jobs_per_s"]
    assert low <= figures["throughput_jobs_per_s"] <= high
    assert "figures" not in figures["repeat"]  # every run's figures are in the JSON only
    [saved] = tmp_path.glob("burst-*.json")
    runs = json.loads(saved.read_text())["figures"]["repeat"]["figures"]
    assert [r["published"] for r in runs] == [100, 100]
    assert sorted(r["throughput_jobs_per_s"] for r in runs) == [low, high]


async def test_clean_removes_what_a_killed_run_left_and_nothing_else(ns: Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    settings = ns.settings()
    topic = f"bench{run}.{load_topic_specs()[0].name}"
    create_topics(settings.kafka_bootstrap, load_topic_specs()[:1], f"bench{run}.")
    table = f"bench_attempts_{run[:6]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "bench_{run}"')
        conn.execute(f"CREATE TABLE public.{table} (id int)")
    client = redis.Redis.from_url(settings.redis_url)
    client.set(f"bench{run}:queue", "x")
    client.set(f"{settings.redis_prefix}kept", "x")  # a namespace that is not the bench's

    async def found(present: bool) -> tuple[leftovers.Leftovers] | None:
        # A new topic reaches every broker's metadata a moment after its creation (and a
        # deleted one leaves it a moment after its deletion). A 1-tuple: no leftovers at
        # all is a falsy Leftovers, but a result.
        now = await asyncio.to_thread(leftovers.find, settings)
        return (now,) if (topic in now.topics) == present else None

    try:
        (before,) = await eventually(lambda: found(True))
        assert f"bench_{run}" in before.schemas and f"public.{table}" in before.tables
        assert f"bench{run}:queue".encode() in before.redis_keys
        assert _herald_bench(ns, "clean")["removed"]["schemas"] >= 1
        (after,) = await eventually(lambda: found(False))
        assert not any(run in name for name in [*after.topics, *after.schemas, *after.tables])
        assert client.exists(f"bench{run}:queue") == 0
        assert client.exists(f"{settings.redis_prefix}kept") == 1
    finally:
        client.delete(f"{settings.redis_prefix}kept")
        client.close()


def test_a_tiny_ingress_run_measures_the_three_ways_in(ns: Namespace, tmp_path: Path) -> None:
    figures = _bench(ns, tmp_path, "ingress", "-n", "400")
    assert set(figures["single"]["statuses"]) == {"201"} and figures["single"]["jobs"] > 0
    assert figures["batch"]["statuses"] == {"200": 4} and figures["batch"]["jobs"] == 1600
    assert figures["kafka"]["jobs"] == figures["kafka_two_schedulers"]["jobs"] == 400
    ways = ("single", "batch", "kafka", "kafka_two_schedulers")
    assert all(figures[k]["jobs_per_s"] > 0 for k in ways)
