"""Three publisher copies (processes) share 3,000 requests across 50 sandbox accounts; one is
SIGKILLed mid-run, at a moment it has posted and not yet stored the result. No request is
lost, every attempt's results agree, nothing posts twice (the sandbox never deduplicates:
the copies that take the victim's attempts over must look its posts up first)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST, RESULT
from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace, eventually
from tests.integration.publisher_support import (
    TOKEN,
    TopicReader,
    by_attempt,
    dispatch,
    posted_unanswered,
    produce,
    sandbox_connection,
    schedule,
)

pytestmark = pytest.mark.chaos

ACCOUNTS = 50
JOBS_PER_ACCOUNT = 60  # 3,000 requests
COPIES = 3


class Copies:
    """`herald publisher` processes in the test's namespace, logs captured to files."""

    def __init__(self, ns: Namespace, logs: Path) -> None:
        self.ns = ns
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        env = self.ns.env(publisher_max_in_flight=12)
        env["HERALD_REPLICA"] = name
        with (self.logs / f"{name}.log").open("wb") as err:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "herald", "publisher"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def name_of(self, worker: str) -> str:
        return next(n for n in self.procs if worker == self.worker_of(n))

    def worker_of(self, name: str) -> str:
        return f"publisher-{name}-{self.procs[name].pid}"

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs.glob("*.log"))


@pytest.fixture
def copies(ns: Namespace, tmp_path: Path) -> Iterator[Copies]:
    c = Copies(ns, tmp_path)
    yield c
    c.stop_all()


def group_members(bootstrap: str, group: str) -> list[Any]:
    client = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until answered
    future = client.describe_consumer_groups([group])[group]
    try:
        return list(future.result(timeout=10).members)
    except Exception:
        return []


async def test_sigkill_of_one_copy_loses_no_request_and_posts_nothing_twice(
    ns: Namespace, rt: Runtime, copies: Copies
) -> None:
    # 50 accounts; a fifth of them answer ambiguously or with retryable errors now and then.
    connections = []
    for i in range(ACCOUNTS):
        # Half of a sandbox call passes after its post: the answer's way back.
        meta: dict[str, Any] = {"latency_ms": 100}
        if i % 5 == 0:
            meta |= {"ambiguous_rate": 0.2, "retryable_rate": 0.1}
        connections.append(await sandbox_connection(rt, **meta))
    jobs = [j for _ in range(JOBS_PER_ACCOUNT) for j in await schedule(rt, connections)]
    assert len(jobs) == ACCOUNTS * JOBS_PER_ACCOUNT

    for i in range(COPIES):
        copies.start(f"c{i}")
    bootstrap, group = rt.settings.kafka_bootstrap, rt.names.group(PUBLISHER_GROUP)

    async def all_members_hold_partitions() -> bool:
        members = await asyncio.to_thread(group_members, bootstrap, group)
        return len(members) == COPIES and all(m.assignment.topic_partitions for m in members)

    await eventually(all_members_hold_partitions, timeout=120, interval=0.5)

    requests = await dispatch(rt, jobs)
    produce(rt.producer, rt.names.topic(REQUEST), requests)
    results = TopicReader(bootstrap, rt.names.topic(RESULT))
    try:

        async def all_copies_busy() -> bool:
            values = await results.poll()
            return len(values) >= 300 and len({v["worker"] for v in values}) == COPIES

        await eventually(all_copies_busy, timeout=180, interval=0.05)
        victim = copies.name_of(await eventually(lambda: posted_unanswered(rt), interval=0.005))
        copies.procs[victim].send_signal(signal.SIGKILL)
        at_kill = len(results.values)
        cut_short = await posted_unanswered(rt, victim=copies.worker_of(victim))

        async def every_attempt_answered() -> bool:
            values = await results.poll()
            return len(by_attempt(values)) >= len(jobs)

        await eventually(every_attempt_answered, timeout=300, interval=0.5)
        values = results.values
    finally:
        results.close()
    codes = copies.stop_all()

    assert at_kill < len(jobs), "the kill came after the run ended"
    assert cut_short, "the victim had posted nothing it had not answered"
    assert codes[victim] == -signal.SIGKILL
    assert all(code == 0 for name, code in codes.items() if name != victim), codes

    answered = by_attempt(values)
    assert set(answered) == {(j, 1) for j in jobs}
    for key, group_values in answered.items():
        assert all(v == group_values[0] for v in group_values), key  # every copy agrees
    final = {job: vs[0] for (job, _), vs in answered.items()}

    posts = await rt.db.fetch("SELECT job_id::text AS job_id, id FROM sandbox_posts")
    per_job = Counter(p["job_id"] for p in posts)
    doubled = [job for job, n in per_job.items() if n > 1]
    assert not doubled, f"{len(doubled)} jobs posted twice, e.g. {doubled[:3]}"
    for job, result in final.items():
        if result["outcome"] == "published":
            assert per_job[job] == 1, job
            post_id = next(str(p["id"]) for p in posts if p["job_id"] == job)
            assert result["provider_ids"]["sandbox_post_id"] == post_id
        elif result["outcome"] != "ambiguous":
            assert per_job[job] == 0, job  # only an ambiguous answer may hide a post
    outcomes = Counter(r["outcome"] for r in final.values())
    assert outcomes["published"] > len(jobs) // 2, outcomes
    print(
        f"\nkilled {victim} after {at_kill} results, with {len(cut_short)} posts unanswered;"
        f" {len(values)} results for {len(jobs)}"
        f" attempts ({sum(len(v) > 1 for v in answered.values())} answered more than once);"
        f" outcomes {dict(outcomes)}"
    )

    output = copies.output()
    assert "results emitted" in output and TOKEN not in output
