"""`herald stack down && herald stack up` keeps topics and rows (on a stack of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from herald.shared.infra.kafka.admin import TopicSpec, admin, create_topics
from herald.shared.infra.paths import ROOT

PORTS = {"kafka": 29092, "controller": 29093, "redis": 26379, "postgres": 25432, "prom": 29090}


def _herald(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_down_then_up_keeps_a_topic_and_a_row(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        {
            "HERALD_STACK_DIR": str(tmp_path / "stack"),
            "HERALD_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORTS['kafka']}",
            "HERALD_KAFKA_CONTROLLER_PORT": str(PORTS["controller"]),
            "HERALD_REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
            "HERALD_DATABASE_URL": f"postgresql://herald@127.0.0.1:{PORTS['postgres']}/herald",
            "HERALD_PROMETHEUS_PORT": str(PORTS["prom"]),
        }
    )
    bootstrap, db_url = env["HERALD_KAFKA_BOOTSTRAP"], env["HERALD_DATABASE_URL"]
    try:
        up = _herald(env, "stack", "up")
        assert up.returncode == 0, up.stderr[-3000:]
        again = _herald(env, "stack", "up")
        assert again.returncode == 0 and "already" in again.stderr.lower(), again.stderr[-2000:]
        create_topics(bootstrap, [TopicSpec("kept", 3, 3_600_000)])
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")

        down = _herald(env, "stack", "down")
        assert down.returncode == 0, down.stderr[-2000:]
        status = _herald(env, "stack", "status")
        assert status.returncode != 0 and "down" in status.stdout

        up = _herald(env, "stack", "up")
        assert up.returncode == 0, up.stderr[-3000:]
        status = _herald(env, "stack", "status")
        assert status.returncode == 0, status.stdout
        assert "4.1" in status.stdout  # the broker's Kafka version is printed
        assert "kept" in admin(bootstrap).list_topics(timeout=30).topics
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        _herald(env, "stack", "down")
