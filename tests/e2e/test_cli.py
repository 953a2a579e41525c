"""The `herald` CLI as a user runs it: results alone on stdout, tokens from stdin."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace

DAY = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()


def herald(ns: Namespace, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        cwd=ROOT,
        env=ns.env(),
        text=True,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_cli_keys_connections_schedule_and_jobs(ns: Namespace) -> None:
    key = herald(ns, "apikey", "create", "--tenant", "acme")
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip().startswith("hk_") and len(key.stdout.strip().splitlines()) == 1
    keys = orjson.loads(herald(ns, "apikey", "list").stdout)
    assert [k["tenant_id"] for k in keys] == ["acme"] and "digest" not in keys[0]

    token = "EAAG-secret-token-value-" + "0" * 16
    added = herald(
        ns,
        "connections",
        "add",
        "--platform",
        "instagram",
        "--name",
        "shop",
        "--account-id",
        "17841400000000001",
        "--tenant",
        "acme",
        stdin=token,
    )
    assert added.returncode == 0, added.stderr
    connection_id = added.stdout.strip()
    sandbox = herald(
        ns, "connections", "add", "--platform", "sandbox", "--name", "demo", "--tenant", "acme"
    ).stdout.strip()
    listed = herald(ns, "connections", "list")
    assert token not in listed.stdout and connection_id in listed.stdout
    shown = herald(ns, "connections", "show", connection_id)
    assert shown.returncode == 0, shown.stderr
    one = orjson.loads(shown.stdout)
    assert one["id"] == connection_id and token not in shown.stdout
    assert one["token"]["issued_at"] and "expires_at" in one["token"]
    missing = herald(ns, "connections", "show", "7f9c2c1e-7a55-4a43-9b8b-3c2f6f1d2a11")
    assert missing.returncode != 0
    with psycopg.connect(ns.base.database_url) as conn:
        stored = conn.execute(
            f'SELECT token_ciphertext FROM "{ns.db_schema}".connections WHERE id = %s',
            (connection_id,),
        ).fetchone()
    assert stored is not None and token.encode() not in bytes(stored[0])  # encrypted at rest

    scheduled = herald(
        ns,
        "schedule",
        "--platform",
        "sandbox",
        "--connection",
        sandbox,
        "--media",
        "https://cdn.example.com/a.jpg",
        "--caption",
        "hi",
        "--at",
        f"{DAY}T10:00:00+02:00",
    )
    assert scheduled.returncode == 0, scheduled.stderr
    (job_id,) = scheduled.stdout.split()
    jobs = orjson.loads(herald(ns, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in jobs] == [job_id]
    assert jobs[0]["scheduled_at"] == f"{DAY}T08:00:00.000000Z"
    shown = herald(ns, "jobs", "show", job_id)
    assert job_id in shown.stdout and "SCHEDULED" in shown.stdout

    cancelled = herald(ns, "jobs", "cancel", job_id)
    assert orjson.loads(cancelled.stdout)["status"] == "CANCELLED"

    bad = herald(
        ns,
        "schedule",
        "--platform",
        "sandbox",
        "--connection",
        sandbox,
        "--media",
        "http://not-https.example.com/a.jpg",
    )
    assert bad.returncode != 0 and bad.stdout == ""
    assert orjson.loads(bad.stderr.strip().splitlines()[-1])["error"]["fields"]

    assert orjson.loads(herald(ns, "sandbox", "posts", "--json").stdout) == []


def test_cli_schedules_a_file_of_jobs_each_on_its_own(ns: Namespace, tmp_path: Path) -> None:
    sandbox = herald(
        ns, "connections", "add", "--platform", "sandbox", "--name", "demo", "--tenant", "acme"
    ).stdout.strip()
    job = {
        "platform": "sandbox",
        "connection_id": sandbox,
        "media_asset_ids": ["https://a.b/c.jpg"],
    }
    path = tmp_path / "jobs.json"
    path.write_bytes(
        orjson.dumps({"jobs": [{**job, "idempotency_key": "f-1"}, {**job, "caption": 5}, job]})
    )
    first = herald(ns, "schedule", "--file", str(path))
    lines = first.stdout.splitlines()
    assert first.returncode == 2, first.stderr  # a refused job: invalid input
    assert len(lines) == 3 and lines[1].startswith("422 validation_failed")
    again = orjson.loads(herald(ns, "schedule", "--file", str(path), "--json").stdout)
    assert [i["status"] for i in again["items"]] == [200, 422, 201]
    assert again["items"][0]["job"]["id"] == lines[0]
    with psycopg.connect(ns.base.database_url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{ns.db_schema}".jobs').fetchone()
    assert row is not None and row[0] == 3
    missing = herald(ns, "schedule", "--file", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "none.json" in missing.stderr
