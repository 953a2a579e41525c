"""`JobLog`: a line per job at DEBUG, and at INFO a summary per interval (a count and the
first few jobs), never a line per job."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from herald.shared.infra import logging as herald_logging
from herald.shared.infra.logging import FIRST, JobLog
from tests.conftest import eventually

log = logging.getLogger("herald.test.joblog")


def jobs(start: int, count: int) -> list[dict[str, object]]:
    return [
        {"job_id": f"job-{i}", "trace_id": f"t{i}", "outcome": "published" if i % 4 else "failed"}
        for i in range(start, start + count)
    ]


def lines(caplog: pytest.LogCaptureFixture, level: int, msg: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and r.getMessage() == msg]


def test_many_batches_make_a_few_info_lines_naming_the_first_jobs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(herald_logging, "EVERY", 3600.0)
    caplog.set_level(logging.INFO)
    emitted = JobLog(log, "results emitted", "result emitted", by="outcome")
    for start in range(0, 20_000, 250):
        emitted.add(jobs(start, 250))
    emitted.flush()

    summaries = lines(caplog, logging.INFO, "results emitted")
    # The first batch at once, the other 79 batches in one line (within the interval).
    assert [r.count for r in summaries] == [250, 19_750]
    last = summaries[-1].__dict__
    assert last["first"] == jobs(250, FIRST) and last["more"] == 19_750 - FIRST
    assert last["by_outcome"] == {"published": 14_813, "failed": 4_937}
    assert lines(caplog, logging.DEBUG, "result emitted") == []
    assert len(caplog.records) == 2


def test_debug_carries_every_job(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dispatched = JobLog(log, "jobs dispatched", "job dispatched")
    dispatched.add(jobs(0, 300))
    each = lines(caplog, logging.DEBUG, "job dispatched")
    assert [r.__dict__["job_id"] for r in each] == [f"job-{i}" for i in range(300)]
    assert [r.trace_id for r in each][:2] == ["t0", "t1"]
    [summary] = lines(caplog, logging.INFO, "jobs dispatched")
    assert summary.count == 300 and summary.more == 300 - FIRST


def test_at_info_only_the_jobs_a_line_names_are_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    shown: list[int] = []

    def fields(i: int) -> dict[str, Any]:
        shown.append(i)
        return {"job_id": f"job-{i}"}

    scheduled = JobLog(log, "jobs scheduled", "job scheduled")
    scheduled.add(range(1000), fields)
    scheduled.add(range(1000, 1500), fields)
    [summary] = lines(caplog, logging.INFO, "jobs scheduled")  # the first add's, at once
    scheduled.flush()
    # The first few of each line: ten dicts built for 1,500 jobs
    assert shown == [*range(FIRST), *range(1000, 1000 + FIRST)]
    assert summary.count == 1000 and [j["job_id"] for j in summary.first] == [
        f"job-{i}" for i in range(FIRST)
    ]
    assert lines(caplog, logging.INFO, "jobs scheduled")[1].count == 500
    caplog.set_level(logging.DEBUG)
    scheduled.add(range(10), fields)
    assert len(lines(caplog, logging.DEBUG, "job scheduled")) == 10  # every job at DEBUG


def test_nothing_is_counted_above_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    quiet = JobLog(log, "jobs scheduled", "job scheduled")
    quiet.add(jobs(0, 10))
    caplog.set_level(logging.INFO)
    quiet.flush()
    assert caplog.records == []


async def test_a_held_summary_is_written_when_its_interval_ends(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(herald_logging, "EVERY", 0.2)
    caplog.set_level(logging.INFO)
    applied = JobLog(log, "results applied", "result applied")
    applied.add(jobs(0, 3))  # at once
    applied.add(jobs(3, 4))  # held: no line until the interval ends, with no other add

    async def second() -> list[logging.LogRecord] | None:
        found = lines(caplog, logging.INFO, "results applied")
        return found if len(found) == 2 else None

    first, held = await eventually(second, timeout=10)
    assert (first.count, held.count) == (3, 4)
    assert held.first == jobs(3, 4) and not hasattr(held, "more")
    await asyncio.sleep(0.3)
    assert len(lines(caplog, logging.INFO, "results applied")) == 2


def test_flush_all_writes_what_is_held(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cancelled = JobLog(log, "jobs cancelled", "job cancelled")
    cancelled.add(jobs(0, 1))
    cancelled.add(jobs(1, 2))  # held (no event loop: no timer)
    assert len(lines(caplog, logging.INFO, "jobs cancelled")) == 1
    herald_logging.flush_all()
    assert [r.count for r in lines(caplog, logging.INFO, "jobs cancelled")] == [1, 2]
