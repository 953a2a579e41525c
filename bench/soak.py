"""`herald bench soak`: Instagram jobs through the whole pipeline against the fake Graph
server with every fault class mixed in (`bench.graph_fake.mix.soak_mix`), while publisher
copies are SIGKILLed and restarted.

A killed copy's partitions go to the others only once its Kafka session (10 s) has expired;
killing faster than that keeps the consumer group rebalancing and its partitions starve, so
a copy is killed every 10 s by default.

The fake runs in this process (a thread) under a time scale: a day of Instagram's limits (the
quota window, container expiry) passes in a minute, Reels process for seconds. Half the
accounts use Instagram Login (the fake's second host), a few have a small publishing quota.
When every job is terminal, the figures compare Postgres with what the fake published:
double posts (a caption twice on one account), PUBLISHED jobs not live, live posts whose job
ended otherwise (only `unconfirmed` may be live), jobs left open.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.graph_fake import FakeGraph, soak_mix
from bench.graph_fake.thread import FakeGraphThread
from bench.pipeline import BenchPipeline, _say, percentiles, utc_in
from herald.shared.infra.settings import Settings

TERMINAL = ("PUBLISHED", "DEAD_LETTERED", "CANCELLED")
HANG_SECONDS = 3.0  # the fake's lost answers: longer than the publishers' call timeout
SOAK_ENV = {
    # Short waits so the soak ends in minutes; the stuck-job check must exceed the container
    # polls plus the call timeouts (1 + 4 x 2 s).
    "HERALD_CONTAINER_POLL_SECONDS": "1",
    "HERALD_CALL_TIMEOUT_SECONDS": "2",
    "HERALD_LEASE_SECONDS": "3",
    "HERALD_STUCK_AFTER_SECONDS": "12",
    "HERALD_RECONCILE_INTERVAL_SECONDS": "2",
    "HERALD_BACKOFF_BASE_SECONDS": "0.2",
    "HERALD_BACKOFF_MAX_SECONDS": "3",
    "HERALD_PUBLISHER_MAX_IN_FLIGHT": "64",
}


@dataclass(frozen=True)
class SoakJob:
    account: str
    connection: str
    caption: str


def _media(rng: random.Random, i: int) -> list[str]:
    """Mostly images, some Reels, some carousels with a video child."""
    u = rng.random()
    if u < 0.15:
        return [f"https://cdn.example.com/soak/{i}.mp4"]
    if u < 0.25:
        return [
            f"https://cdn.example.com/soak/{i}-a.jpg",
            f"https://cdn.example.com/soak/{i}-b.mp4",
        ]
    return [f"https://cdn.example.com/soak/{i}.jpg"]


def soak(
    base: Settings,
    *,
    jobs: int = 2000,
    accounts: int = 50,
    copies: int = 3,
    kill_every: float = 10.0,
    time_scale: float = 1440.0,
    low_quota_accounts: int = 5,
    low_quota: int = 20,
    timeout: float = 1800.0,
    seed: int = 1,
) -> dict[str, Any]:
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    fake = FakeGraph(time_scale=time_scale, mix=soak_mix(hang_seconds=HANG_SECONDS), seed=seed)
    ids, bodies = _accounts(fake, run, accounts, low_quota_accounts, low_quota)
    # SIGTERM (a test's timeout) ends the run through its context managers: no copy is left.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with FakeGraphThread(fake) as graph:
            env = SOAK_ENV | {
                "HERALD_INSTAGRAM_GRAPH_URL": fake.base_url,
                "HERALD_INSTAGRAM_LOGIN_GRAPH_URL": fake.instagram_base_url,
            }
            with BenchPipeline(
                base, publishers=copies, extra_env=env, connection_bodies=bodies
            ) as pipe:
                planned = [
                    SoakJob(ids[i % accounts], pipe.connections[i % accounts], f"soak {run} #{i}")
                    for i in range(jobs)
                ]
                began = time.monotonic()
                _schedule(pipe, planned, rng)
                kills = _kill_until_done(pipe, jobs, kill_every, timeout, rng)
                figures = _figures(pipe, graph, planned)
                seconds = time.monotonic() - began
    finally:
        signal.signal(signal.SIGTERM, previous)
    figures.update(
        {
            "jobs": jobs,
            "accounts": accounts,
            "publisher_copies": copies,
            "kills": kills,
            "kill_every_seconds": kill_every,
            "seconds": round(seconds, 1),
            "time_scale": time_scale,
        }
    )
    _say("soak:\n" + table(figures))
    return figures


def _accounts(
    fake: FakeGraph, run: str, count: int, low_quota_accounts: int, low_quota: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """The accounts on the fake (half with Instagram Login, a few with a small quota) and the
    connection bodies for them."""
    ids = [f"1784{int(run, 16):08d}{a:05d}" for a in range(count)]  # digits only
    tokens = [f"EAAGsoak{run}{a:05d}TOKEN{a:016d}" for a in range(count)]  # a plausible length
    logins = ["facebook" if a % 2 == 0 else "instagram" for a in range(count)]
    for a in range(count):
        fake.add_account(ids[a], tokens[a], login=logins[a])
    for a in range(min(low_quota_accounts, count)):
        fake.set_quota_total(low_quota, ids[a])
    bodies = [
        {
            "platform": "instagram",
            "name": f"soak {a}",
            "access_token": tokens[a],
            "metadata": {"instagramBusinessAccountId": ids[a], "login": logins[a]},
        }
        for a in range(count)
    ]
    return ids, bodies


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _schedule(pipe: BenchPipeline, planned: list[SoakJob], rng: random.Random) -> None:
    client = pipe.client()
    due = utc_in(5.0)
    for i, job in enumerate(planned):
        client.schedule(
            platform="instagram",
            connection_id=job.connection,
            media_asset_ids=_media(rng, i),
            caption=job.caption,
            scheduled_at=due,
        )
    client.flush()
    _say(f"soak: {len(planned)} Instagram jobs sent, due at {due.isoformat()}")


def _kill_until_done(
    pipe: BenchPipeline, expected: int, every: float, timeout: float, rng: random.Random
) -> int:
    """SIGKILL one publisher copy every `every` seconds (restarting it at once) until every
    job is terminal; answers how many kills."""
    kills = 0
    deadline = time.monotonic() + timeout
    next_kill = time.monotonic() + every
    last_print = 0.0
    progress = (0, time.monotonic())  # the terminal count and when it last grew
    while time.monotonic() < deadline:
        done = _terminal(pipe)
        if done >= expected:
            break
        if done > progress[0]:
            progress = (done, time.monotonic())
        if time.monotonic() - last_print > 5:
            _say(f"soak: {done}/{expected} jobs terminal, {kills} publisher copies killed")
            last_print = time.monotonic()
        if time.monotonic() - progress[1] > 60:  # stalled: say where the open jobs stand
            _say("soak: no job ended for a minute; the open ones:\n" + _open_jobs(pipe))
            progress = (done, time.monotonic())
        if time.monotonic() >= next_kill:
            victims = [n for n, p in pipe.procs if n.startswith("publisher")]
            name = rng.choice(victims)
            index = next(i for i, (n, _) in enumerate(pipe.procs) if n == name)
            pipe.procs[index][1].send_signal(signal.SIGKILL)
            pipe.procs[index][1].wait()
            del pipe.procs[index]
            pipe._spawn("publisher", name)
            kills += 1
            next_kill = time.monotonic() + every
        for name, proc in pipe.procs:
            if proc.poll() is not None and not name.startswith("publisher"):
                raise RuntimeError(f"{name} exited with {proc.returncode}")
        time.sleep(0.5)
    return kills


def _terminal(pipe: BenchPipeline) -> int:
    with psycopg.connect(pipe.settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{pipe.settings.db_schema}".jobs WHERE status = ANY(%s)',
            (list(TERMINAL),),
        ).fetchone()
    return int(row[0]) if row else 0


def _open_jobs(pipe: BenchPipeline) -> str:
    """Each open job's row, its claims and its attempts, one line each."""
    schema = pipe.settings.db_schema
    with psycopg.connect(pipe.settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT j.id, j.status, j.attempt_count, j.queued, j.next_attempt_at,"
            " j.dispatched_at, j.last_error,"
            f' (SELECT json_agg(c) FROM "{schema}".publish_claims c WHERE c.job_id = j.id),'
            f' (SELECT json_agg(a.outcome ORDER BY a.attempt) FROM "{schema}".attempts a'
            "   WHERE a.job_id = j.id), now()"
            f' FROM "{schema}".jobs j WHERE NOT j.status = ANY(%s)',
            (list(TERMINAL),),
        ).fetchall()
    return "\n".join("  " + " | ".join(str(v) for v in row) for row in rows)


def _figures(pipe: BenchPipeline, graph: FakeGraphThread, planned: list[SoakJob]) -> dict[str, Any]:
    schema = pipe.settings.db_schema
    with psycopg.connect(pipe.settings.database_url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT j.caption, j.status, (SELECT d.reason FROM "{schema}".dead_letters d'
            f" WHERE d.job_id = j.id ORDER BY d.created_at DESC LIMIT 1) AS reason"
            f' FROM "{schema}".jobs j'
        ).fetchall()
        attempts = conn.execute(
            f'SELECT outcome, count(*) FROM "{schema}".attempts GROUP BY 1 ORDER BY 2 DESC'
        ).fetchall()
        spans = conn.execute(
            f"SELECT extract(epoch FROM j.updated_at - j.scheduled_at)::float8,"
            f" (SELECT string_agg(a.outcome, ' ' ORDER BY a.attempt)"
            f' FROM "{schema}".attempts a WHERE a.job_id = j.id)'
            f' FROM "{schema}".jobs j ORDER BY 1 DESC'
        ).fetchall()

    def snapshot(fake: FakeGraph) -> tuple[dict[str, list[str]], Counter[str], int]:
        posts = {account: [m.caption for m in media] for account, media in fake.posts.items()}
        faults = Counter(f"{r.call} {r.status}" for r in fake.requests if r.status != 200)
        return posts, faults, len(fake.containers)

    posts, faults, containers = graph.run(snapshot)
    account_of = {job.caption: job.account for job in planned}
    live: Counter[str] = Counter()
    for account, captions in posts.items():
        live.update(c for c in captions if account_of.get(c) == account)
    states: Counter[str] = Counter()
    live_states: Counter[str] = Counter()
    published_not_live = 0
    for caption, status, reason in rows:
        state = f"{status} {reason}" if status == "DEAD_LETTERED" else status
        states[state] += 1
        if live[caption]:
            live_states[state] += 1
        elif status == "PUBLISHED":
            published_not_live += 1
    return {
        "final_states": dict(states.most_common()),
        "live_by_final_state": dict(live_states.most_common()),
        "attempt_outcomes": {outcome: count for outcome, count in attempts},
        "double_posts": sum(n - 1 for n in live.values() if n > 1),
        "published_not_live": published_not_live,
        "live_not_published": sum(
            n for s, n in live_states.items() if s not in ("PUBLISHED", "DEAD_LETTERED unconfirmed")
        ),
        "not_terminal": sum(n for s, n in states.items() if s.split()[0] not in TERMINAL),
        "seconds_to_terminal": percentiles([float(span) for span, _ in spans]),
        "slowest": [f"{span:.0f}s: {outcomes}" for span, outcomes in spans[:5]],
        "containers_created": containers,
        "graph_errors_answered": dict(faults.most_common()),
    }


def table(figures: dict[str, Any]) -> str:
    """The outcome table: each final state, its jobs and how many of them are live."""
    live = figures["live_by_final_state"]
    lines = [f"{'final state':32} {'jobs':>6} {'live':>6}"]
    for state, count in figures["final_states"].items():
        lines.append(f"{state:32} {count:>6} {live.get(state, 0):>6}")
    lines.append(
        "attempt outcomes: " + ", ".join(f"{k} {v}" for k, v in figures["attempt_outcomes"].items())
    )
    for key in ("double_posts", "published_not_live", "live_not_published", "not_terminal"):
        lines.append(f"{key}: {figures[key]}")
    return "\n".join(lines)
