"""Scheduling, dispatching, publishing and applying many jobs: at INFO, a summary line per
interval for each (a count and the first few job ids), never a line per job; at DEBUG, a
line for every job."""

from __future__ import annotations

import logging

import pytest

from herald.shared.infra import logging as herald_logging
from herald.shared.infra.logging import FIRST
from tests.conftest import eventually
from tests.integration.publisher_harness import Harness
from tests.support.helpers import sandbox_connections
from tests.support.results_pipeline import pipeline, schedule_jobs, statuses

JOBS = 120
STAGES = [
    ("jobs scheduled", "job scheduled"),  # the job service (the API, the CLI)
    ("jobs dispatched", "job dispatched"),  # the scheduler's dispatcher
    ("results emitted", "result emitted"),  # the publisher
    ("results applied", "result applied"),  # the results service
]


@pytest.fixture
def caught(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    herald_logging.flush_all()  # nothing held from an earlier test
    monkeypatch.setattr(herald_logging, "EVERY", 3600.0)  # the whole test in one interval
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    return caplog


async def test_every_stage_logs_a_summary_at_info_and_each_job_at_debug(
    harness: Harness, caught: pytest.LogCaptureFixture
) -> None:
    rt = harness.rt
    connections = await sandbox_connections(rt, 4)
    ids = await schedule_jobs(rt, JOBS, connections=connections)  # one request per job
    async with pipeline(rt):  # dispatcher, outbox relay, results; the harness publishes

        async def published() -> bool:
            return set((await statuses(rt, ids)).values()) == {"PUBLISHED"}

        await eventually(published, timeout=60)
    herald_logging.flush_all()

    for summary, each in STAGES:
        lines = [
            r for r in caught.records if r.levelno == logging.INFO and r.getMessage() == summary
        ]
        # The first job at once, the rest when the interval ends (here: flush_all).
        assert 1 <= len(lines) <= 2, (summary, len(lines))
        assert sum(r.__dict__["count"] for r in lines) == JOBS, summary
        for line in lines:
            fields = line.__dict__
            assert len(fields["first"]) == min(FIRST, fields["count"])
            assert fields["count"] == len(fields["first"]) + fields.get("more", 0)
            assert {j["job_id"] for j in fields["first"]} <= set(ids)
        named = [
            r.__dict__["job_id"]
            for r in caught.records
            if r.levelno == logging.DEBUG and r.getMessage() == each
        ]
        assert sorted(named) == sorted(ids), each
