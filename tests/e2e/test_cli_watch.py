"""`herald --version`, the exit codes that tell failures apart, and `herald jobs watch`
following a job live until it ends."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from herald.shared import __version__
from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace
from tests.e2e.test_cli import herald
from tests.support.helpers import free_ports

LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


def scheduled_job(ns: Namespace) -> str:
    conn = herald(
        ns, "connections", "add", "--platform", "sandbox", "--name", "demo", "--tenant", "acme"
    ).stdout.strip()
    made = herald(
        ns,
        "schedule",
        "--platform",
        "sandbox",
        "--connection",
        conn,
        "--media",
        "https://cdn.example.com/a.jpg",
        "--at",
        LATER,
        "--json",
    )
    assert made.returncode == 0, made.stderr
    job = orjson.loads(made.stdout)
    assert job["status"] == "SCHEDULED"
    return str(job["id"])


def test_version_and_exit_codes(ns: Namespace) -> None:
    version = herald(ns, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"herald {__version__}"
    job = scheduled_job(ns)
    assert herald(ns, "jobs", "show", str(uuid.uuid4())).returncode == 3  # not found
    assert herald(ns, "jobs", "cancel", job).returncode == 0
    conflict = herald(ns, "jobs", "retry", job)  # a cancelled job is not retried
    assert conflict.returncode == 4, conflict.stderr
    invalid = herald(
        ns, "schedule", "--platform", "sandbox", "--connection", "x", "--media", "http://a"
    )
    assert invalid.returncode == 2 and "validation_failed" in invalid.stderr
    assert herald(ns, "jobs", "list", "--limit").returncode == 2  # argparse: a usage error
    closed = free_ports(1)  # nothing listens there
    away = subprocess.run(
        [sys.executable, "-m", "herald", "jobs", "list"],
        cwd=ROOT,
        env=ns.env(database_url=f"postgresql://herald@127.0.0.1:{closed}/herald"),
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert away.returncode == 5, away.stderr


def test_watch_follows_a_job_until_it_ends(ns: Namespace) -> None:
    job = scheduled_job(ns)
    assert herald(ns, "jobs", "watch", "--post-id", str(uuid.uuid4())).returncode == 3
    timed_out = herald(ns, "jobs", "watch", job, "--timeout", "0.5", "--interval", "0.2")
    assert timed_out.returncode == 1 and "SCHEDULED" in timed_out.stdout
    assert "0/1 ended" in timed_out.stderr  # progress goes to stderr
    watcher = subprocess.Popen(
        [sys.executable, "-m", "herald", "jobs", "watch", job, "--json", "--interval", "0.2"],
        cwd=ROOT,
        env=ns.env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = watcher.stdout.readline() if watcher.stdout else ""
        assert orjson.loads(first)["status"] == "SCHEDULED"  # it is watching, live
        assert herald(ns, "jobs", "cancel", job).returncode == 0
        out, _ = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["status"] for line in lines] == ["CANCELLED"]
    assert watcher.returncode == 1  # it ended, and not published
